//! The top's side of sign-in (design §9): the person's number and
//! password (or pairing code) go to the number's region,
//! `POST /api/v1/account/verify`, which checks them with its own limits
//! and answers with a PASSporT for the number; the top verifies it with
//! the region's key from DNS (as it verifies every vouched number) before
//! the portal crate's `top` module opens the top's own session. The top
//! never stores or logs the password.
//!
//! The pages, sessions and the top's per-address limits are
//! `peerdial_portal::top`; this module only finds regions and asks them.

use std::sync::Arc;

use peerdial_number::Number;
use peerdial_portal::link::BoxFuture;
use peerdial_portal::top::{Delegate, Delegated, Home};
use peerdial_portal::verify::{Denied, VerifyAnswer};
use serde_json::json;

use crate::portal::DEADLINE;
use crate::TopShared;

/// The top's handle for the portal's sign-in pages.
pub(crate) struct Delegation(pub Arc<TopShared>);

impl TopShared {
    /// The HTTP base (`http://…`) of the region holding `number`: a region
    /// child's own, or what the country server below names.
    pub(crate) async fn region_http(&self, number: Number) -> Option<String> {
        let digits = number.digits();
        let child = {
            let children = self.children.lock().expect("children lock");
            children.values().find(|c| digits.starts_with(&c.prefix)).cloned()?
        };
        if child.prefix.len() == 5 {
            return Some(child.http.trim_end_matches('/').to_string());
        }
        let path = format!("/api/v1/lookup/{digits}");
        let asked = tokio::time::timeout(DEADLINE, peerdial_net::http_client::request("GET", &child.http, &path, None)).await;
        match asked {
            Ok(Ok((200, body))) => serde_json::from_str::<serde_json::Value>(&body)
                .ok()?
                .get("http")?
                .as_str()
                .map(|h| h.trim_end_matches('/').to_string()),
            _ => None,
        }
    }
}

impl Delegation {
    async fn ask(&self, number: Number, password: String, code: String) -> Result<(), Delegated> {
        let shared = &self.0;
        let http = shared.region_http(number).await.ok_or(Delegated::NoRegion)?;
        let body = json!({"number": number.to_string(), "password": password, "code": code}).to_string();
        let asked = tokio::time::timeout(
            DEADLINE,
            peerdial_net::http_client::request("POST", &http, "/api/v1/account/verify", Some(&body)),
        )
        .await;
        let (status, text) = match asked {
            Err(_) => {
                return Err(Delegated::Unreachable(format!(
                    "{http}: no answer within {} ms",
                    DEADLINE.as_millis()
                )))
            }
            Ok(Err(e)) => return Err(Delegated::Unreachable(e.to_string())),
            Ok(Ok(answer)) => answer,
        };
        let answer: VerifyAnswer =
            serde_json::from_str(&text).map_err(|e| Delegated::Unreachable(format!("{http} answered {status}, unreadable: {e}")))?;
        if let Some(code) = answer.refused {
            let denied = Denied::from_code(&code, answer.minutes.unwrap_or(1))
                .ok_or_else(|| Delegated::Unreachable(format!("{http}: an unknown refusal {code:?}")))?;
            return Err(Delegated::Denied(denied));
        }
        let Some(identity) = answer.identity else {
            return Err(Delegated::Unreachable(format!(
                "{http} answered {status}: {}",
                answer.error.unwrap_or_default()
            )));
        };
        crate::users::check_identity(shared, number, &identity)
            .await
            .map_err(Delegated::Unreachable)
    }

    async fn home_of(&self, number: Number) -> Home {
        let portal = self.0.region_http(number).await;
        let talkers = match crate::talkers::talkers_of(&self.0, number).await {
            Ok(list) => list
                .into_iter()
                .map(|t| {
                    let account = match t.account {
                        peerdial_directory::Account::Peerdial { number } => number,
                        peerdial_directory::Account::Sip { aor, .. } => aor,
                    };
                    format!("{}: {account}{}", t.name, if t.verified { " ✓" } else { "" })
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read a user's talkers");
                Vec::new()
            }
        };
        Home { portal, talkers }
    }
}

impl Delegate for Delegation {
    fn verify(&self, number: Number, password: String, code: String) -> BoxFuture<'_, Result<(), Delegated>> {
        Box::pin(self.ask(number, password, code))
    }
    fn home(&self, number: Number) -> BoxFuture<'_, Home> {
        Box::pin(self.home_of(number))
    }
}
