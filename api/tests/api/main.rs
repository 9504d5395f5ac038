//! The API's integration tests: the real router on a real port, a fresh PostgreSQL database
//! and Redis key prefix per test.

mod auth;
mod health;
mod helpers;
mod jobs;
mod openapi;
