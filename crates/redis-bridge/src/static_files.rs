//! `--static DIR`: the files under `DIR` at `/` (the dashboard), behind the
//! bridge's own routes.
//!
//! What is served: a regular file (or a directory's `index.html`) whose real
//! path, after every symlink is resolved, lies inside `DIR`. What is not
//! (`404`, the same answer as for a missing file, so nothing is revealed):
//! - any path with a component that starts with `.` (`/.env`, `/.git/config`,
//!   `/assets/.secret`), percent-encoded or not;
//! - `..` components;
//! - a symlink, at any depth, that leads out of `DIR`. Symlinks that stay
//!   inside `DIR` are followed.
//!
//! The check runs before [`ServeDir`] opens the file; a symlink swapped in
//! between the check and the open is not defended against (the directory is
//! the operator's, not the clients').

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use percent_encoding::percent_decode_str;
use tower_http::services::ServeDir;

/// The files under `root`, as a router to use as the bridge's fallback.
pub fn service(root: PathBuf) -> Router {
    let guard_root = Arc::new(root.clone());
    Router::new()
        .fallback_service(ServeDir::new(root))
        .layer(middleware::from_fn_with_state(guard_root, guard))
}

async fn guard(State(root): State<Arc<PathBuf>>, request: Request, next: Next) -> Response {
    if servable(&root, request.uri().path()).await {
        next.run(request).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// True when the URL path `path` names no dotfile and does not lead out of `root`.
async fn servable(root: &Path, path: &str) -> bool {
    let Ok(decoded) = percent_decode_str(path).decode_utf8() else { return false };
    let relative = Path::new(decoded.trim_start_matches('/'));
    let hidden_or_up = relative.components().any(|component| match component {
        Component::Normal(name) => name.as_encoded_bytes().starts_with(b"."),
        Component::CurDir => false,
        Component::ParentDir | Component::RootDir | Component::Prefix(_) => true,
    });
    if hidden_or_up {
        return false;
    }
    let Ok(root) = tokio::fs::canonicalize(root).await else { return false };
    let inside = |real: &Path| real.starts_with(&root);
    match tokio::fs::canonicalize(root.join(relative)).await {
        // Missing (or a dangling link): ServeDir answers 404.
        Err(_) => true,
        Ok(real) if !inside(&real) => false,
        Ok(real) => match tokio::fs::canonicalize(real.join("index.html")).await {
            // A directory is served through its index.html, which may be a link too.
            Ok(index) => inside(&index),
            Err(_) => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dotfiles_parent_paths_and_links_out_of_the_root_are_refused() {
        let base = std::env::temp_dir().join(format!("swarmbus-static-unit-{}", std::process::id()));
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("assets")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("index.html"), "ok").unwrap();
        std::fs::write(root.join("assets/app.js"), "ok").unwrap();
        std::fs::write(root.join(".env"), "secret").unwrap();
        std::fs::write(outside.join("secret.txt"), "secret").unwrap();
        std::fs::write(outside.join("index.html"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("leakdir")).unwrap();
        std::os::unix::fs::symlink(root.join("assets/app.js"), root.join("inner.js")).unwrap();
        for (path, expected) in [
            ("/", true),
            ("/index.html", true),
            ("/assets/app.js", true),
            ("/inner.js", true),
            ("/missing.js", true),
            ("/.env", false),
            ("/%2eenv", false),
            ("/assets/../.env", false),
            ("/assets/%2e%2e/index.html", false),
            ("/leak.txt", false),
            ("/leakdir/", false),
            ("/leakdir/secret.txt", false),
        ] {
            assert_eq!(servable(&root, path).await, expected, "{path}");
        }
        std::fs::remove_dir_all(base).unwrap();
    }
}
