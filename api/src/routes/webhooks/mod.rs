//! Webhooks in: providers calling Herald, authenticated by the provider's signature.

pub mod signature;
pub mod twilio;
