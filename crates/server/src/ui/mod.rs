//! The web dashboard under `/ui/`: server-rendered HTML (maud escapes every interpolation),
//! local users with session cookies and CSRF tokens, the same roles as the API, strict security
//! headers and no script at all, so every page works without JavaScript.

mod charts;
mod pages;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use medsec_auth::Role;
use medsec_ca::CaStore;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::state::AppState;

const COOKIE: &str = "__Host-medsec-session";
const CSS: &str = include_str!("app.css");

/// Who is signed in, and the token their forms must carry.
#[derive(Debug, Clone)]
pub struct UiSession {
    pub username: String,
    pub role: Role,
    pub csrf: String,
    cookie: String,
    record: medsec_auth::users::SessionRecord,
}

impl UiSession {
    pub fn actor(&self) -> medsec_core::Actor {
        medsec_core::Actor::parse(&format!("ui:{}", self.username))
            .unwrap_or_else(|_| medsec_core::Actor::system())
    }

    pub fn can(&self, need: Role) -> bool {
        self.role >= need
    }
}

/// A page-level failure: shown as a page, never as a stack trace.
pub struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        UiError {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> Self {
        UiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn internal(area: &str, e: &dyn std::fmt::Display) -> Self {
        tracing::error!("ui {area}: {e}");
        UiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log",
        )
    }
}

impl From<crate::problem::Problem> for UiError {
    fn from(p: crate::problem::Problem) -> Self {
        UiError::new(p.status, p.detail)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let body = bare(
            "Error",
            html! {
                main #main {
                    h1 { "Something went wrong" }
                    p.error role="alert" { (self.message) }
                    p { a href="/ui/" { "Back to the fleet" } }
                }
            },
        );
        (self.status, axum::response::Html(body.into_string())).into_response()
    }
}

pub type UiResult = Result<Response, UiError>;

fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — medsec" }
                link rel="stylesheet" href="/ui/static/app.css";
            }
            body { (body) }
        }
    }
}

const NAV: [(&str, &str, &str); 10] = [
    ("fleet", "/ui/", "Fleet"),
    ("fleet-risk", "/ui/fleet-risk", "Fleet risk"),
    ("pki", "/ui/pki", "PKI"),
    ("vulns", "/ui/vulns", "Vulnerabilities"),
    ("updates", "/ui/updates", "Updates"),
    ("risk", "/ui/risk", "Risk"),
    ("incidents", "/ui/incidents", "Incidents"),
    ("cvd", "/ui/cvd", "CVD inbox"),
    ("audit", "/ui/audit", "Audit log"),
    ("docs", "/ui/docs", "Documentation"),
];

/// The page shell: skip link, navigation with the current page marked, who is signed in.
pub fn page(s: &UiSession, current: &str, title: &str, body: Markup) -> Response {
    let m = bare(
        title,
        html! {
            a.skip href="#main" { "Skip to content" }
            header {
                nav aria-label="Main" {
                    ul {
                        @for (id, href, label) in NAV {
                            li {
                                @if id == current {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                    }
                }
                form.signout method="post" action="/ui/logout" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    span { (s.username) " (" (s.role.as_str()) ")" }
                    button type="submit" { "Sign out" }
                }
            }
            main #main {
                h1 { (title) }
                (body)
            }
        },
    );
    axum::response::Html(m.into_string()).into_response()
}

/// A hidden CSRF field for forms.
pub fn csrf(s: &UiSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

fn cookie_value(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The signed-in user, or a redirect to the sign-in page.
pub async fn session<S>(st: &AppState<S>, h: &HeaderMap) -> Result<UiSession, Response> {
    let to_login = || Redirect::to("/ui/login").into_response();
    let (Some(users), Some(cookie)) = (st.users.as_deref(), cookie_value(h)) else {
        return Err(to_login());
    };
    match medsec_auth::users::session(
        users,
        &cookie,
        OffsetDateTime::now_utc(),
        &st.session_policy,
    )
    .await
    {
        Ok(s) => Ok(UiSession {
            username: s.username().to_string(),
            role: s.role(),
            csrf: s.csrf_token.clone(),
            cookie,
            record: s,
        }),
        Err(_) => Err(to_login()),
    }
}

/// For state-changing forms: the session, the role, and the CSRF token must all be right.
pub async fn acting<S>(
    st: &AppState<S>,
    h: &HeaderMap,
    presented_csrf: &str,
    need: Role,
) -> Result<UiSession, Response> {
    let s = session(st, h).await?;
    if medsec_auth::users::check_csrf(&s.record, presented_csrf).is_err() {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            "the form's security token is missing or stale; reload the page and try again",
        )
        .into_response());
    }
    if !s.can(need) {
        return Err(UiError::new(
            StatusCode::FORBIDDEN,
            format!("your role ({}) may not do this; it needs {}", s.role, need),
        )
        .into_response());
    }
    Ok(s)
}

/// Security headers on every dashboard response: no inline script or style anywhere, no
/// framing, HTTPS only, no caching of pages that hold fleet data.
async fn headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (
            "strict-transport-security",
            "max-age=63072000; includeSubDomains",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    res
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

pub fn router<S: CaStore + 'static>() -> Router<Arc<AppState<S>>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/static/app.css", get(css))
        .route("/ui/login", get(login_form::<S>).post(login::<S>))
        .route("/ui/logout", post(logout::<S>))
        .merge(pages::router::<S>())
        .layer(axum::middleware::from_fn(headers))
}

fn login_page(error: Option<&str>, username: &str) -> Response {
    let m = bare(
        "Sign in",
        html! {
            main #main.login {
                h1 { "Sign in to medsec" }
                form method="post" action="/ui/login" {
                    // Which of the two was wrong is not said (that would confirm user names),
                    // so the message belongs to both fields.
                    label for="username" { "Username" }
                    input #username type="text" name="username" value=(username) autocomplete="username" required autofocus aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "login-error")];
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "login-error")];
                    @if let Some(e) = error {
                        p.error role="alert" id="login-error" { (e) }
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    );
    axum::response::Html(m.into_string()).into_response()
}

async fn login_form<S: CaStore>(State(st): State<Arc<AppState<S>>>, h: HeaderMap) -> Response {
    if session(&st, &h).await.is_ok() {
        return Redirect::to("/ui/").into_response();
    }
    login_page(None, "")
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(f): Form<LoginForm>,
) -> Response {
    let Some(users) = st.users.as_deref() else {
        return UiError::new(StatusCode::SERVICE_UNAVAILABLE, "no user store").into_response();
    };
    // Every attempt costs an Argon2 verification and an audit entry: bound them per address.
    if !st.login_limiter.allow(from.ip()) {
        let mut r = login_page(
            Some("Too many sign-in attempts from this address; wait a minute."),
            &f.username,
        );
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return r;
    }
    match medsec_auth::users::sign_in(
        users,
        &f.username,
        &f.password,
        OffsetDateTime::now_utc(),
        &st.session_policy,
    )
    .await
    {
        Ok(s) => {
            let cookie = format!(
                "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
                s.cookie_value
            );
            let mut r = Redirect::to("/ui/").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(medsec_auth::AuthError::Locked { .. }) => {
            let mut r = login_page(
                Some(
                    "This account is locked after repeated failed sign-ins. Try again later or ask an administrator.",
                ),
                &f.username,
            );
            *r.status_mut() = StatusCode::FORBIDDEN;
            r
        }
        Err(_) => {
            let mut r = login_page(Some("Wrong username or password."), &f.username);
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn logout<S: CaStore>(
    State(st): State<Arc<AppState<S>>>,
    h: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let s = match acting(&st, &h, &f.csrf, Role::Auditor).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(users) = st.users.as_deref() {
        let _ = medsec_auth::users::sign_out(users, &s.cookie).await;
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-medsec-session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

/// Renders `PreEscaped` only for markup this module produced itself (charts).
pub fn raw(m: Markup) -> PreEscaped<String> {
    PreEscaped(m.into_string())
}
