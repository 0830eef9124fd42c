#!/usr/bin/env python3
"""Turn the criterion results of `cargo bench --bench crypto` into the
markdown tables of docs/PERFORMANCE.md.

Usage:
    python3 crypto/benches/report.py [CRITERION_DIR]

CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion, else to the
workspace's target/criterion. Every figure is the median of the last run
(`<group>/<bench>/new/estimates.json`), in nanoseconds before formatting.
Standard library only.
"""

import json
import os
import sys
from pathlib import Path

# (group, bench, what it measures), in report order.
BENCHES = [
    ("primitives", "x25519_dh", "X25519 DH, variable base"),
    ("primitives", "x25519_keygen", "X25519 key generation (fixed base)"),
    ("primitives", "ed25519_sign", "Ed25519 sign, 64 B"),
    ("primitives", "ed25519_verify", "Ed25519 verify_strict (ed25519-dalek), 64 B"),
    ("primitives", "ed25519_verify_rfc8032", "Ed25519 RFC 8032 verify (vodozemac's default; the cost of starling's strict rule), 64 B"),
    ("primitives", "hmac_sha256_1b", "HMAC-SHA256 of 1 B, fresh 32 B key"),
    ("primitives", "aead_encrypt_256b", "ChaCha20-Poly1305 encrypt, 256 B"),
    ("primitives", "aead_decrypt_256b", "ChaCha20-Poly1305 decrypt, 256 B"),
    ("primitives", "mlkem768_encaps", "ML-KEM-768 encapsulate"),
    ("primitives", "mlkem768_decaps", "ML-KEM-768 decapsulate"),
    ("primitives", "sha256_1mib", "SHA-256 of 1 MiB"),
    ("primitives", "blake3_1mib", "BLAKE3 of 1 MiB in 64 KiB slices (the attachment digest)"),
    ("setup", "prekey_message_decode", "starling `CiphertextMessage::from_bytes`, prekey message (1 signature)"),
    ("setup", "pqxdh_initiate", "starling `Session::initiate`, PQXDH"),
    ("setup", "pqxdh_initiate_ops", "5 X25519 DH + 2 keygen + ML-KEM encapsulate back to back"),
    ("setup", "pqxdh_bundle_decode", "starling `PreKeyBundle::from_bytes`, PQXDH bundle (3 signatures)"),
    ("setup", "pqxdh_accept", "starling `Session::accept`, PQXDH, first message included"),
    ("setup", "pqxdh_accept_ops", "6 X25519 DH + 1 keygen + ML-KEM decapsulate back to back"),
    ("setup", "olm_outbound", "vodozemac `create_outbound_session`"),
    ("setup", "olm_inbound", "vodozemac `create_inbound_session`, first message included"),
    ("message", "starling_in_chain", "starling encrypt + decrypt, 256 B, same chain"),
    ("message", "olm_in_chain", "Olm encrypt + decrypt, 256 B, same chain"),
    ("message", "aead_in_chain", "raw ChaCha20-Poly1305 encrypt + decrypt, 256 B, 187 B AD"),
    ("message", "ratchet_step_ops", "2 X25519 DH + 1 keygen back to back (ratchet step's floor, measured in place)"),
    ("message", "starling_ratchet_step", "starling encrypt + decrypt, 256 B, ping-pong (DH ratchet step)"),
    ("message", "olm_ratchet_step", "Olm encrypt + decrypt, 256 B, ping-pong (DH ratchet step)"),
    ("group", "sender_key", "Sender Key encrypt + decrypt, 256 B (bytes to bytes)"),
    ("group", "megolm", "Megolm encrypt + decrypt, 256 B (with to_bytes/from_bytes)"),
    ("attachment", "stream_encrypt", "`AttachmentEncryptor::update`, 16 MiB in 64 KiB slices, appended to one `Vec`"),
    ("attachment", "stream_encrypt_into", "`AttachmentEncryptor::update_into`, 16 MiB in 64 KiB pieces, each into one reused buffer (the client's loop)"),
    ("attachment", "raw_encrypt", "raw ChaCha20-Poly1305 in place, 16 MiB in 64 KiB chunks"),
    ("attachment", "stream_decrypt", "`AttachmentDecryptor::update`, 16 MiB in 64 KiB slices, appended to one `Vec`"),
    ("attachment", "stream_decrypt_into", "`AttachmentDecryptor::update_into`, header then whole sealed chunks, each into one reused buffer (the client's loop)"),
    ("attachment", "raw_decrypt", "raw ChaCha20-Poly1305 in place, 16 MiB in 64 KiB chunks"),
    ("sealed", "v1_seal_open_256b", "sealed sender v1: seal + open + verify (certificate seen before), 256 B inner"),
    ("sealed", "v1_first_message_256b", "the same with a fresh verifier (one Ed25519 verification more)"),
    ("sealed", "v1_ops_256b", "1 X25519 keygen + 4 DH + AEAD seal and open of the 32 B static key and the padded plaintext (v1's floor, measured in place)"),
    ("sealed", "v2_seal_1dev", "sealed sender v2 seal, 1 device"),
    ("sealed", "v2_seal_10dev", "sealed sender v2 seal, 10 devices"),
]

# Bytes processed per iteration, for throughput columns.
BYTES = {
    ("primitives", "sha256_1mib"): 1 << 20,
    ("primitives", "blake3_1mib"): 1 << 20,
    ("attachment", "stream_encrypt"): 16 << 20,
    ("attachment", "stream_encrypt_into"): 16 << 20,
    ("attachment", "raw_encrypt"): 16 << 20,
    ("attachment", "stream_decrypt"): 16 << 20,
    ("attachment", "stream_decrypt_into"): 16 << 20,
    ("attachment", "raw_decrypt"): 16 << 20,
}


def criterion_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "criterion"
    return Path(__file__).resolve().parents[2] / "target" / "criterion"


class V:
    """A median with its 95% confidence interval, in nanoseconds, carried
    through sums, differences and ratios (interval arithmetic)."""

    def __init__(self, med, lo, hi):
        self.med, self.lo, self.hi = med, lo, hi

    def __add__(self, o):
        return V(self.med + o.med, self.lo + o.lo, self.hi + o.hi)

    def __sub__(self, o):
        return V(self.med - o.med, self.lo - o.hi, self.hi - o.lo)

    def __rmul__(self, k):
        return V(k * self.med, k * self.lo, k * self.hi)

    def __truediv__(self, o):
        return V(self.med / o.med, self.lo / o.hi, self.hi / o.lo)


def load(root):
    """Medians of the benchmarks present under `root`; missing ones are
    skipped (and so are the rows that need them)."""
    results = {}
    for group, bench, _ in BENCHES:
        path = root / group / bench / "new" / "estimates.json"
        if not path.exists():
            continue
        median = json.loads(path.read_text())["median"]
        ci = median["confidence_interval"]
        results[bench] = V(median["point_estimate"], ci["lower_bound"], ci["upper_bound"])
    if not results:
        sys.exit(f"no results under {root}: run the benchmarks first")
    return results


def fmt_time(ns):
    for unit, scale in (("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}" if abs(ns) < 100 * scale else f"{ns / scale:.0f} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(nbytes, ns):
    return f"{nbytes / (ns / 1e9) / (1 << 20):.0f} MiB/s"


def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} logical CPUs (`nproc`), CPU model `{model}` (/proc/cpuinfo)"


def main():
    r = load(criterion_dir())

    print(f"Machine: {machine()}.\n")
    print("### Absolute medians\n")
    print("| group | benchmark | measures | median | 95% CI of the median | throughput |")
    print("|---|---|---|---:|---|---:|")
    for group, bench, what in BENCHES:
        if bench not in r:
            continue
        v = r[bench]
        rate = fmt_rate(BYTES[(group, bench)], v.med) if (group, bench) in BYTES else ""
        print(f"| {group} | `{bench}` | {what} | {fmt_time(v.med)} | "
              f"{fmt_time(v.lo)} – {fmt_time(v.hi)} | {rate} |")

    print("\nRatios divide medians; the range next to each ratio combines the 95% "
          "confidence intervals of its inputs. A verdict is read off the median "
          "ratio and marked *within noise* when that range straddles the target.")

    def row(name, measured, against, floor, target=None, higher_is_better=False):
        """One ratio row; `measured` and `floor` are functions of the results
        so that rows whose inputs are missing are skipped."""
        try:
            a, b = measured(r), floor(r)
        except KeyError:
            return
        q = a / b
        if target is None:
            label, goal, verdict = f"(info) {name}", "–", "–"
        else:
            met = q.med >= target if higher_is_better else q.med <= target
            straddles = q.lo <= target <= q.hi
            goal = f"{'≥' if higher_is_better else '≤'} {target}×"
            label = name
            verdict = "met" if met else "**not met**"
            if straddles:
                verdict += " (within noise)"
        print(f"| {label} | {fmt_time(a.med)} | {against} | {fmt_time(b.med)} | "
              f"{q.med:.2f}× | {q.lo:.2f}–{q.hi:.2f} | {goal} | {verdict} |")

    def header(title):
        print(f"\n### {title}\n")
        print("| measured | value | against | value | ratio | range | target | verdict |")
        print("|---|---:|---|---:|---:|---|---|---|")

    header("Messages")
    row("`starling_in_chain`", lambda r: r["starling_in_chain"],
        "`olm_in_chain`", lambda r: r["olm_in_chain"], 1.0)
    row("`starling_in_chain`", lambda r: r["starling_in_chain"],
        "floor: 8 × `hmac_sha256_1b` + `aead_in_chain`",
        lambda r: 8 * r["hmac_sha256_1b"] + r["aead_in_chain"], 3.0)
    row("`starling_ratchet_step`", lambda r: r["starling_ratchet_step"],
        "X25519: 2 × `x25519_dh` + `x25519_keygen`",
        lambda r: 2 * r["x25519_dh"] + r["x25519_keygen"], 1.3)
    row("`starling_ratchet_step`", lambda r: r["starling_ratchet_step"],
        "`ratchet_step_ops` (same ops, measured in place)", lambda r: r["ratchet_step_ops"], 1.3)
    row("`olm_ratchet_step`", lambda r: r["olm_ratchet_step"],
        "`ratchet_step_ops`", lambda r: r["ratchet_step_ops"])
    row("`starling_ratchet_step`", lambda r: r["starling_ratchet_step"],
        "`olm_ratchet_step`", lambda r: r["olm_ratchet_step"])

    header("Session setup (PQXDH; classical X3DH sessions are refused)")
    init_floor = lambda r: (5 * r["x25519_dh"] + 2 * r["x25519_keygen"]  # noqa: E731
                            + r["mlkem768_encaps"])
    accept_floor = lambda r: (6 * r["x25519_dh"] + r["x25519_keygen"]  # noqa: E731
                              + r["mlkem768_decaps"])
    row("`pqxdh_initiate`", lambda r: r["pqxdh_initiate"],
        "5 × `x25519_dh` + 2 × `x25519_keygen` + `mlkem768_encaps`", init_floor, 1.25)
    row("`pqxdh_initiate`", lambda r: r["pqxdh_initiate"],
        "`pqxdh_initiate_ops` (same ops, measured in place)", lambda r: r["pqxdh_initiate_ops"], 1.25)
    row("`pqxdh_initiate` + `pqxdh_bundle_decode`",
        lambda r: r["pqxdh_initiate"] + r["pqxdh_bundle_decode"],
        "the initiate floor + 3 × `ed25519_verify`",
        lambda r: init_floor(r) + 3 * r["ed25519_verify"], 1.25)
    row("`pqxdh_accept`", lambda r: r["pqxdh_accept"],
        "6 × `x25519_dh` + 1 × `x25519_keygen` + `mlkem768_decaps`", accept_floor, 1.25)
    row("`pqxdh_accept`", lambda r: r["pqxdh_accept"],
        "`pqxdh_accept_ops` (same ops, measured in place)", lambda r: r["pqxdh_accept_ops"], 1.25)
    row("`pqxdh_accept` + `prekey_message_decode`",
        lambda r: r["pqxdh_accept"] + r["prekey_message_decode"],
        "the accept floor + 1 × `ed25519_verify`",
        lambda r: accept_floor(r) + r["ed25519_verify"], 1.25)
    row("`pqxdh_initiate`", lambda r: r["pqxdh_initiate"],
        "`olm_outbound`", lambda r: r["olm_outbound"])
    row("`pqxdh_accept`", lambda r: r["pqxdh_accept"],
        "`olm_inbound`", lambda r: r["olm_inbound"])

    header("Groups")
    row("`sender_key`", lambda r: r["sender_key"], "`megolm`", lambda r: r["megolm"], 1.0)
    # Each side against its own signature work: how much is not Ed25519.
    # Both verify at the cost of RFC 8032 `verify` (starling's strict rule
    # refuses small-order R by encoding, SPEC.md 1.4).
    row("`sender_key`", lambda r: r["sender_key"],
        "`ed25519_sign` + `ed25519_verify_rfc8032`",
        lambda r: r["ed25519_sign"] + r["ed25519_verify_rfc8032"])
    row("`megolm`", lambda r: r["megolm"],
        "`ed25519_sign` + `ed25519_verify_rfc8032`",
        lambda r: r["ed25519_sign"] + r["ed25519_verify_rfc8032"])

    header("Attachments (throughput ratio: raw time ÷ stream time)")
    # The target holds for the client's loop (`_into`); the `Vec` API,
    # which zero-fills what it appends, is shown beside it.
    for op in ("encrypt", "decrypt"):
        row(f"`raw_{op}` ÷ `stream_{op}_into`", lambda r, op=op: r[f"raw_{op}"],
            f"`stream_{op}_into`", lambda r, op=op: r[f"stream_{op}_into"], 0.8,
            higher_is_better=True)
        row(f"`raw_{op}` ÷ `stream_{op}`", lambda r, op=op: r[f"raw_{op}"],
            f"`stream_{op}`", lambda r, op=op: r[f"stream_{op}"])
    # What the stream does beyond the AEAD: the digest (16 MiB of BLAKE3)
    # and any copies; 1.0 would be the AEAD and the digest alone.
    for op in ("encrypt", "decrypt"):
        row(f"`stream_{op}_into`", lambda r, op=op: r[f"stream_{op}_into"],
            f"`raw_{op}` + 16 × `blake3_1mib`",
            lambda r, op=op: r[f"raw_{op}"] + 16 * r["blake3_1mib"])

    header("Sealed sender (`cargo bench --bench sealed`)")
    row("`v1_seal_open_256b`", lambda r: r["v1_seal_open_256b"],
        "`v1_ops_256b` (its DH + AEAD work, measured in place)",
        lambda r: r["v1_ops_256b"], 1.3)
    row("`v1_first_message_256b`", lambda r: r["v1_first_message_256b"],
        "`v1_ops_256b` + `ed25519_verify`",
        lambda r: r["v1_ops_256b"] + r["ed25519_verify"], 1.3)
    row("v2 per added device: (`v2_seal_10dev` − `v2_seal_1dev`) ÷ 9",
        lambda r: (1 / 9) * (r["v2_seal_10dev"] - r["v2_seal_1dev"]),
        "2 × `x25519_dh`", lambda r: 2 * r["x25519_dh"])


if __name__ == "__main__":
    main()
