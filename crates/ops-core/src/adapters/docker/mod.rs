//! [`DockerRuntime`]: [`ContainerRuntime`](crate::ports::ContainerRuntime) over the Docker
//! Engine API (bollard), with the API version negotiated so engines from 20.10 on work.

mod client;
mod df;
#[cfg(test)]
mod tests;

pub use client::DockerRuntime;
