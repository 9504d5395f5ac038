//! Authentication building blocks: password hashing, tokens, the brute-force limiter and
//! the e-mails the auth flows send.

pub mod client_ip;
pub mod emails;
pub mod limiter;
pub mod password;
pub mod tokens;
