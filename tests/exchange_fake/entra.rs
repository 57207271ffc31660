//! The fake Entra ID token endpoint: client credentials and refresh tokens, with the
//! error answers (AADSTS codes, trace IDs) the real one gives.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Behaviour, Identity, Recorded, Reply, State, TOKEN_MARKER, json, misbehave};

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn entra_error(status: u16, error: &str, code: u32, text: &str) -> Reply {
    json(
        status,
        serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 0000 Correlation ID: 1111 Timestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
            "trace_id": "0000",
        }),
    )
}

fn issue(state: &State, identity: Identity, claims: serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"none"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut issued = state.issued.lock().unwrap();
    let token = format!("{header}.{payload}.{TOKEN_MARKER}{}", issued.len());
    issued.insert(token.clone(), identity);
    token
}

pub(super) async fn token(state: &State, b: &Behaviour, r: &Recorded) -> Reply {
    if let Some(answer) = misbehave(&b.token_mode, "{\"access_token\": ").await {
        return answer;
    }
    let tenant = r
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if !b.tenants.contains(tenant) {
        return entra_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let f = form(&r.body);
    let client_id = f.get("client_id").cloned().unwrap_or_default();
    let Some(app) = b.apps.get(&client_id) else {
        return entra_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    };
    if f.get("client_secret") != Some(&app.secret) {
        return entra_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
        );
    }
    match f.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {
            let access = issue(
                state,
                Identity::App,
                serde_json::json!({"appid": client_id, "roles": app.roles}),
            ) + &b.token_suffix;
            json(
                200,
                serde_json::json!({"token_type": "Bearer", "expires_in": b.expires_in, "access_token": access}),
            )
        }
        Some("refresh_token") => {
            let sent = f.get("refresh_token").cloned().unwrap_or_default();
            let Some(grant) = b.refresh_tokens.get(&sent) else {
                return entra_error(
                    400,
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity.",
                );
            };
            let access = issue(
                state,
                Identity::Delegated,
                serde_json::json!({"appid": client_id, "scp": grant.scp}),
            );
            json(
                200,
                serde_json::json!({
                    "token_type": "Bearer",
                    "expires_in": b.expires_in,
                    "access_token": access,
                    "refresh_token": grant.returns,
                    "scope": grant.scp,
                }),
            )
        }
        _ => entra_error(400, "unsupported_grant_type", 70003, "unsupported grant"),
    }
}
