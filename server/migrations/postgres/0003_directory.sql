-- The organisation's published directory: who works here, in which
-- department, with which title. Imported by an admin; nothing message-related.
CREATE TABLE departments (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE directory_entries (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    title TEXT NOT NULL,
    department_id BIGINT REFERENCES departments(id)
);
