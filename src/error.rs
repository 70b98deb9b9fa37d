//! The error type of kubectl-ds. Every failure becomes one line on stderr and an [`Exit`] code.

use crate::exit::Exit;

/// Errors carry their context as text ("listing nodes: ...") so `main` prints one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Input(String),
    /// A manifest the command cannot use (wrong kind, name, namespace, immutable field), with
    /// what to do instead.
    #[error("{message}")]
    Manifest {
        message: String,
        hint: Option<String>,
    },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Connection(String),
    #[error("{message}")]
    NotFound {
        message: String,
        hint: Option<String>,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unverified(String),
    /// The workflow finished but the old DaemonSet reappeared (exit 8).
    #[error("{0}")]
    Recreated(String),
    #[error("{0}")]
    Api(String),
    #[error("{0}")]
    Io(String),
    /// Whoever reads our output closed it (`kubectl ds explain ... | head`): stop quietly.
    #[error("output closed by the reader")]
    OutputClosed,
}

impl Error {
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> Exit {
        match self {
            Error::Usage(_) | Error::Input(_) | Error::Manifest { .. } => Exit::Usage,
            Error::Config(_) | Error::Connection(_) => Exit::Connection,
            Error::NotFound { .. } => Exit::NotFound,
            Error::Forbidden(_) => Exit::Forbidden,
            Error::Refused(_) => Exit::Refused,
            Error::Unverified(_) => Exit::Unverified,
            Error::Recreated(_) => Exit::Recreated,
            Error::Api(_) | Error::Io(_) => Exit::Internal,
            Error::OutputClosed => Exit::OutputClosed,
        }
    }

    /// A hint printed on a second line, where one helps.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::NotFound { hint, .. } | Error::Manifest { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }

    /// The same error with `prefix: ` before its message (the exit code is kept).
    pub fn context(self, prefix: &str) -> Error {
        self.map_message(|m| format!("{prefix}: {m}"))
    }

    /// The same error with `; note` after its message (the exit code is kept).
    pub fn note(self, note: &str) -> Error {
        self.map_message(|m| format!("{m}; {note}"))
    }

    fn map_message(self, p: impl Fn(String) -> String) -> Error {
        match self {
            Error::Usage(m) => Error::Usage(p(m)),
            Error::Input(m) => Error::Input(p(m)),
            Error::Config(m) => Error::Config(p(m)),
            Error::Connection(m) => Error::Connection(p(m)),
            Error::NotFound { message, hint } => Error::NotFound {
                message: p(message),
                hint,
            },
            Error::Manifest { message, hint } => Error::Manifest {
                message: p(message),
                hint,
            },
            Error::Forbidden(m) => Error::Forbidden(p(m)),
            Error::Refused(m) => Error::Refused(p(m)),
            Error::Unverified(m) => Error::Unverified(p(m)),
            Error::Recreated(m) => Error::Recreated(p(m)),
            Error::Api(m) => Error::Api(p(m)),
            Error::Io(m) => Error::Io(p(m)),
            Error::OutputClosed => Error::OutputClosed,
        }
    }

    /// Wraps a kube client error with what we were doing ("listing nodes").
    pub fn kube(context: &str, err: kube::Error) -> Error {
        use kube::Error as K;
        if let Some(auth) = find_auth_error(&err) {
            return Error::Connection(format!(
                "{context}: getting credentials: {}",
                auth_text(auth)
            ));
        }
        match &err {
            K::Api(status) if status.code == 401 => Error::Connection(format!(
                "{context}: unauthorized: the apiserver rejected the credentials ({}); check the kubeconfig's user, --token or --user",
                status.message
            )),
            K::Api(status) if status.code == 403 => {
                Error::Forbidden(format!("{context}: forbidden: {}", status.message))
            }
            K::Api(status) if status.code == 404 => Error::NotFound {
                message: format!("{context}: {}", status.message),
                hint: None,
            },
            K::Api(status) if status.code == 409 || status.code == 422 => {
                Error::Forbidden(format!("{context}: {}", status.message))
            }
            K::Api(status) => Error::Api(format!("{context}: {}", status.message)),
            K::HyperError(_) | K::Service(_) | K::HttpError(_) => {
                let text = chain(&err);
                if text.contains("deadline has elapsed") || text.contains("timed out") {
                    Error::Connection(format!(
                        "{context}: the apiserver did not answer in time (--request-timeout)"
                    ))
                } else {
                    Error::Connection(format!("{context}: cannot reach the apiserver: {text}"))
                }
            }
            _ => Error::Api(format!("{context}: {}", chain(&err))),
        }
    }
}

/// The credential failure inside a kube error (an exec plugin that failed, a token file that
/// cannot be read), if that is what it is: the auth layer's errors arrive boxed.
fn find_auth_error(err: &kube::Error) -> Option<&kube::client::AuthError> {
    if let kube::Error::Auth(a) = err {
        return Some(a);
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = src {
        if let Some(a) = e.downcast_ref::<kube::client::AuthError>() {
            return Some(a);
        }
        src = e.source();
    }
    None
}

/// A credential failure in one line; for a failed exec plugin, its exit status and what it
/// wrote on stderr (kube's own message prints the raw output bytes).
fn auth_text(err: &kube::client::AuthError) -> String {
    use kube::client::AuthError as A;
    match err {
        A::AuthExecRun { cmd, out } => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stderr = stderr.trim();
            let said = if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            };
            format!(
                "the exec credential plugin {cmd} failed ({}){said}",
                out.status
            )
        }
        other => chain(other),
    }
}

/// Renders an error with its sources on one line: "a: b: c".
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out.replace('\n', " ")
}

pub type Result<T> = std::result::Result<T, Error>;
