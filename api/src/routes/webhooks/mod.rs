//! Webhooks in: providers calling Herald, authenticated by the provider's signature.

pub mod inbound_email;
pub mod sendgrid;
pub mod signature;
pub mod twilio;
