//! Clients for the outside services Herald calls, each with a sandbox mode and an error
//! type that says whether a failure is worth retrying.

pub mod email;
pub mod http_answers;
pub mod llm;
pub mod outreach;
pub mod sendgrid;
pub mod twilio;
