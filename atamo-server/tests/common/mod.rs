//! A service built in-process for tests: SQLite in a temporary directory, an admin key, and
//! calls through the router without a socket.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use atamo_server::config::{self, Overrides, ServeConfig};
use atamo_server::serve::Service;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

/// A request to send.
pub struct Call {
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<(Vec<u8>, String)>,
}

impl Call {
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            token: None,
            body: None,
        }
    }
    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn delete(path: &str) -> Self {
        Self::new(Method::DELETE, path)
    }
    pub fn post(path: &str, body: Value) -> Self {
        Self::raw(Method::POST, path, &body.to_string(), "application/json")
    }
    pub fn put(path: &str, body: Value) -> Self {
        Self::raw(Method::PUT, path, &body.to_string(), "application/json")
    }
    pub fn raw(method: Method, path: &str, body: &str, content_type: &str) -> Self {
        Self {
            body: Some((body.as_bytes().to_vec(), content_type.to_owned())),
            ..Self::new(method, path)
        }
    }
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }
}

/// What came back.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Answer {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The fields a problem report names, in order.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|f| f["field"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub struct TestService {
    pub router: axum::Router,
    pub admin: String,
    pub service: tokio::sync::Mutex<Service>,
    pub dir: tempfile::TempDir,
}

/// The configuration of a test service in `dir`: defaults, SQLite there, port 0.
pub fn test_config(dir: &std::path::Path) -> ServeConfig {
    let flags = Overrides {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        data_dir: Some(dir.to_path_buf()),
        log_format: None,
    };
    let (cfg, _) = config::load(None, &|_| None, &flags).unwrap();
    cfg
}

impl TestService {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(dir.path());
        change(&mut cfg);
        let service = Service::start(&cfg).await.unwrap();
        let admin = service.admin_token.clone().expect("a first admin key");
        let written = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
        assert_eq!(written.trim(), admin);
        Self {
            router: service.router(),
            admin,
            service: tokio::sync::Mutex::new(service),
            dir,
        }
    }

    pub async fn call(&self, call: Call) -> Answer {
        let mut req = Request::builder().method(call.method).uri(&call.path);
        if let Some(t) = &call.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match call.body {
            Some((bytes, ct)) => req.header("content-type", ct).body(Body::from(bytes)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        // Live feeds never end by themselves: read what is there within a moment.
        let body = resp.into_body();
        let bytes = match tokio::time::timeout(
            std::time::Duration::from_millis(500),
            axum::body::to_bytes(body, usize::MAX),
        )
        .await
        {
            Ok(b) => b.unwrap().to_vec(),
            Err(_) => Vec::new(),
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            body,
        }
    }

    /// A new key of `role`.
    pub async fn key(&self, role: &str, tenant: Option<&str>) -> String {
        let mut body = json!({"role": role});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        let r = self
            .call(Call::post("/v1/keys", body).token(&self.admin))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["token"].as_str().unwrap().to_owned()
    }

    /// `order.created` (requiring `order.id`), an HTTP agent `hook` calling `url`, and a rule
    /// `notify` sending it every order.
    pub async fn setup_hook(&self, url: &str) {
        let admin = self.admin.clone();
        let steps = [
            (
                "/v1/event-types",
                json!({"name": "order.created", "required": ["order.id"]}),
            ),
            (
                "/v1/agents",
                json!({"id": "hook", "kind": "http", "config": {"url": url}}),
            ),
            (
                "/v1/rules",
                json!({"id": "notify", "event_type": "order.created", "agent": "hook",
                       "action": "http.request", "template": {"body": {"order": "{{payload.order.id}}"}}}),
            ),
        ];
        for (path, body) in steps {
            let r = self.call(Call::post(path, body).token(&admin)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
        }
    }

    pub async fn stop(&self) {
        self.service.lock().await.stop().await;
    }
}
