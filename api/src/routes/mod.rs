//! Every route of the API, grouped by resource.

pub mod auth;
pub mod courses;
pub mod health;
pub mod jobs;
