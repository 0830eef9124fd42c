//! `/safety` and `/verify` in a chat. A contact is marked verified only
//! against a safety number the person was shown: `/verify` without digits
//! shows the number first and marks it at the next `/verify`, and only if
//! the number is still the one shown; with digits, the digits are checked.

use starling_client::{Client, Conversation, SafetyNumberView};

use super::{Chat, said};
use crate::error::Result;
use crate::output::clean;

impl Chat {
    /// `/safety [USER]`: the number, remembered as shown.
    pub(super) async fn safety(&mut self, client: &mut Client, user: Option<String>) -> Result<()> {
        let Some(user) = self.contact(user) else {
            return Ok(());
        };
        match client.safety_number(&user).await {
            Ok(number) => self.show_number(&user, &number),
            Err(e) => self.refused(e)?,
        }
        Ok(())
    }

    /// `/verify [USER] [DIGITS]`.
    pub(super) async fn verify(
        &mut self,
        client: &mut Client,
        user: Option<String>,
        digits: Option<String>,
    ) -> Result<()> {
        let Some(user) = self.contact(user) else {
            return Ok(());
        };
        let digits = match digits {
            Some(digits) => digits,
            None => {
                let number = match client.safety_number(&user).await {
                    Ok(number) => number,
                    Err(e) => return self.refused(e),
                };
                let shown = self
                    .compared
                    .as_ref()
                    .is_some_and(|(who, display)| *who == user && *display == number.display);
                if !shown {
                    self.show_number(&user, &number);
                    self.screen.note(format!(
                        "compare it with {}; if it matches, type /verify again (or /verify and the digits they read to you)",
                        clean(&user)
                    ));
                    return Ok(());
                }
                number.display
            }
        };
        // The digits are checked against the number at this moment.
        match client.verify(&user, Some(&digits)).await {
            Ok(()) => {
                let value = serde_json::json!({ "verified": user });
                self.show(
                    self.out
                        .render(&value, || format!("{} is verified", clean(&user))),
                );
                self.compared = None;
            }
            Err(e) => self.screen.note(format!("not verified: {}", said(&e))),
        }
        Ok(())
    }

    fn show_number(&mut self, user: &str, number: &SafetyNumberView) {
        self.compared = Some((user.to_owned(), number.display.clone()));
        self.show(self.out.render(number, || {
            crate::trust::safety_number_text(number, &format!("/verify {user}"))
        }));
    }

    /// The contact a command is about: the one named, or the other person
    /// of a one-to-one chat.
    fn contact(&mut self, named: Option<String>) -> Option<String> {
        if named.is_some() {
            return named;
        }
        if let Conversation::Direct(_) = self.conversation {
            return Some(self.with.clone());
        }
        self.screen
            .note("in a group, name the member: /verify @USER or /safety @USER".into());
        None
    }
}
