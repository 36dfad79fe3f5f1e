//! The Kubernetes API adapter, on top of the HTTP path: requests classified
//! as the API server does (`request_info`), Secret masks applied per object
//! in every framing the API uses (`objects`, `watch`), refusals as `Status`
//! objects (`status`).

pub mod objects;
pub mod request_info;
pub mod status;
pub mod watch;
