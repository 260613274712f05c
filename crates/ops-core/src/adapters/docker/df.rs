//! `GET /system/df` read as plain JSON, so that both of its shapes parse: the arrays of API
//! 1.41 to 1.51 (`Images`, `Containers`, `Volumes`, `BuildCache`, `LayersSize`; Docker 20.10
//! to 28) and the per-kind usage objects of 1.52 on (`ImageUsage.Items`, …, with
//! `verbose=1`). bollard only models the newest one, so this endpoint goes over a plain
//! HTTP/1.1 connection of its own.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::ports::container::{BuildCacheRecord, DiskContainer, DiskImage, DiskVolume, EngineDisk};
use crate::{Error, ErrorKind, Result};

/// The most a `/system/df` answer may hold (thousands of images and cache records fit).
pub(super) const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// `GET path` on the engine at `host` (`unix://…`, `tcp://…`, `http://…`): the JSON answer.
pub(super) async fn get_json(host: &str, path: &str) -> Result<Value> {
    let what = format!("GET {path} on the docker engine at {host}");
    let (status, body) = if let Some(socket) = host.strip_prefix("unix://") {
        let stream =
            tokio::net::UnixStream::connect(socket).await.map_err(|e| Error::unavailable(format!("{what}: {e}")))?;
        request(stream, path, &what).await?
    } else if let Some(addr) = host.strip_prefix("tcp://").or_else(|| host.strip_prefix("http://")) {
        let addr = addr.trim_end_matches('/');
        let stream =
            tokio::net::TcpStream::connect(addr).await.map_err(|e| Error::unavailable(format!("{what}: {e}")))?;
        request(stream, path, &what).await?
    } else {
        return Err(Error::unsupported(format!("{what}: only unix:// and tcp:// engines answer this call")));
    };
    if !status.is_success() {
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        let kind = match status.as_u16() {
            404 => ErrorKind::NotFound,
            503 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        return Err(Error::new(kind, format!("{what}: {status}: {message}")));
    }
    serde_json::from_slice(&body).map_err(|e| Error::internal(format!("{what}: the answer is not JSON: {e}")))
}

async fn request<S>(stream: S, path: &str, what: &str) -> Result<(http::StatusCode, Bytes)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| Error::unavailable(format!("{what}: {e}"));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await.map_err(|e| failed(&e))?;
    let driver = tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, "docker")
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| Error::internal(format!("{what}: {e}")))?;
    let answer = async {
        let resp = sender.send_request(req).await.map_err(|e| failed(&e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| Error::unavailable(format!("{what}: reading the answer (at most {MAX_ANSWER} bytes): {e}")))?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    driver.abort();
    answer
}

fn items<'v>(v: &'v Value, legacy: &str, usage: &str) -> &'v [Value] {
    v.get(legacy)
        .and_then(Value::as_array)
        .or_else(|| v.get(usage).and_then(|u| u.get("Items")).and_then(Value::as_array))
        .map_or(&[], Vec::as_slice)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// A count or size; the engine's `-1` ("not computed") and a missing field are `None`.
fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_i64).and_then(|n| u64::try_from(n).ok())
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.get("Labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    let s = v.get(key)?.as_str()?;
    if s.starts_with("0001-") {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Either shape of a `/system/df` answer.
pub(super) fn parse(v: &Value) -> EngineDisk {
    let images = items(v, "Images", "ImageUsage")
        .iter()
        .map(|i| DiskImage {
            id: text(i, "Id"),
            tags: i
                .get("RepoTags")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter().filter_map(Value::as_str).filter(|t| *t != "<none>:<none>").map(str::to_owned).collect()
                })
                .unwrap_or_default(),
            size_bytes: count(i, "Size").unwrap_or(0),
            shared_bytes: count(i, "SharedSize").unwrap_or(0),
            containers: count(i, "Containers").unwrap_or(0),
            parent_id: text(i, "ParentId"),
            labels: labels(i),
        })
        .collect();
    let containers = items(v, "Containers", "ContainerUsage")
        .iter()
        .map(|c| DiskContainer {
            id: text(c, "Id"),
            name: c
                .get("Names")
                .and_then(Value::as_array)
                .and_then(|n| n.first())
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image_id: text(c, "ImageID"),
            state: text(c, "State"),
            size_rw: count(c, "SizeRw").unwrap_or(0),
            volumes: c
                .get("Mounts")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .filter(|m| m.get("Type").and_then(Value::as_str) == Some("volume"))
                        .map(|m| text(m, "Name"))
                        .filter(|n| !n.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            labels: labels(c),
        })
        .collect();
    let volumes = items(v, "Volumes", "VolumeUsage")
        .iter()
        .map(|vol| {
            let usage = vol.get("UsageData").cloned().unwrap_or(Value::Null);
            DiskVolume {
                name: text(vol, "Name"),
                driver: text(vol, "Driver"),
                labels: labels(vol),
                size_bytes: count(&usage, "Size"),
                ref_count: count(&usage, "RefCount"),
            }
        })
        .collect();
    let build_cache = items(v, "BuildCache", "BuildCacheUsage")
        .iter()
        .map(|b| BuildCacheRecord {
            id: text(b, "ID"),
            kind: text(b, "Type"),
            in_use: b.get("InUse").and_then(Value::as_bool).unwrap_or(true),
            shared: b.get("Shared").and_then(Value::as_bool).unwrap_or(true),
            size_bytes: count(b, "Size").unwrap_or(0),
            last_used_at: time(b, "LastUsedAt"),
        })
        .collect();
    let layers_bytes =
        count(v, "LayersSize").or_else(|| v.get("ImageUsage").and_then(|u| count(u, "TotalSize"))).unwrap_or(0);
    EngineDisk { layers_bytes, images, containers, volumes, build_cache }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer of Docker 20.10 (API 1.41), trimmed.
    const V1_41: &str = r#"{
      "LayersSize": 416061951,
      "Images": [
        {"Id": "sha256:aaa", "RepoTags": ["app:1"], "Size": 100, "SharedSize": 40, "Containers": 1},
        {"Id": "sha256:bbb", "RepoTags": ["<none>:<none>"], "Size": 50, "SharedSize": -1, "Containers": 0}
      ],
      "Containers": [
        {"Id": "c1", "Names": ["/shop-api-1"], "ImageID": "sha256:aaa", "State": "exited", "SizeRw": 4096,
         "Labels": {"com.docker.compose.project": "shop"},
         "Mounts": [{"Type": "volume", "Name": "shop_data"}, {"Type": "bind", "Source": "/srv"}]}
      ],
      "Volumes": [
        {"Name": "shop_data", "Driver": "local", "Labels": null, "UsageData": {"Size": 2048, "RefCount": 1}},
        {"Name": "old", "Driver": "local", "Labels": {"com.docker.volume.anonymous": ""},
         "UsageData": {"Size": -1, "RefCount": -1}}
      ],
      "BuildCache": [
        {"ID": "zw1", "Parent": "", "Type": "regular", "InUse": false, "Shared": false, "Size": 30000000,
         "CreatedAt": "2026-12-03T09:20:37.07Z", "LastUsedAt": "2026-12-03T09:20:37.46Z", "UsageCount": 2}
      ],
      "BuilderSize": 0
    }"#;

    /// The same engine state as API 1.52 (Docker 29) answers it with `verbose=1`.
    const V1_52: &str = r#"{
      "ImageUsage": {"ActiveCount": 1, "TotalCount": 2, "Reclaimable": 50, "TotalSize": 416061951, "Items": [
        {"Id": "sha256:aaa", "RepoTags": ["app:1"], "Size": 100, "SharedSize": 40, "Containers": 1},
        {"Id": "sha256:bbb", "RepoTags": [], "Size": 50, "SharedSize": -1, "Containers": 0}
      ]},
      "ContainerUsage": {"ActiveCount": 0, "TotalCount": 1, "Reclaimable": 4096, "TotalSize": 4096, "Items": [
        {"Id": "c1", "Names": ["/shop-api-1"], "ImageID": "sha256:aaa", "State": "exited", "SizeRw": 4096,
         "Labels": {"com.docker.compose.project": "shop"},
         "Mounts": [{"Type": "volume", "Name": "shop_data"}, {"Type": "bind", "Source": "/srv"}]}
      ]},
      "VolumeUsage": {"ActiveCount": 1, "TotalCount": 2, "Reclaimable": 0, "TotalSize": 2048, "Items": [
        {"Name": "shop_data", "Driver": "local", "Labels": null, "UsageData": {"Size": 2048, "RefCount": 1}},
        {"Name": "old", "Driver": "local", "Labels": {"com.docker.volume.anonymous": ""},
         "UsageData": {"Size": -1, "RefCount": -1}}
      ]},
      "BuildCacheUsage": {"ActiveCount": 0, "TotalCount": 1, "Reclaimable": 30000000, "TotalSize": 30000000,
        "Items": [
        {"ID": "zw1", "Parents": [], "Type": "regular", "InUse": false, "Shared": false, "Size": 30000000,
         "CreatedAt": "2026-12-03T09:20:37.07Z", "LastUsedAt": "2026-12-03T09:20:37.46Z", "UsageCount": 2}
      ]}
    }"#;

    #[test]
    fn both_shapes_of_system_df_read_the_same() {
        let old = parse(&serde_json::from_str(V1_41).unwrap());
        let new = parse(&serde_json::from_str(V1_52).unwrap());
        assert_eq!(old, new);
        assert_eq!(old.layers_bytes, 416_061_951);
        assert_eq!(old.images[0].tags, ["app:1"]);
        assert!(old.images[1].tags.is_empty(), "<none>:<none> is no tag");
        assert_eq!((old.images[0].shared_bytes, old.images[1].shared_bytes), (40, 0));
        let c = &old.containers[0];
        assert_eq!((c.name.as_str(), c.state.as_str(), c.size_rw), ("shop-api-1", "exited", 4096));
        assert_eq!(c.volumes, ["shop_data"]);
        assert_eq!(old.volumes[0].size_bytes, Some(2048));
        assert_eq!((old.volumes[1].size_bytes, old.volumes[1].ref_count), (None, None), "-1 is unknown");
        assert!(old.volumes[1].labels.contains_key("com.docker.volume.anonymous"));
        let b = &old.build_cache[0];
        assert!(!b.in_use && !b.shared && b.size_bytes == 30_000_000 && b.last_used_at.is_some());
    }

    #[test]
    fn an_empty_or_odd_answer_is_empty_not_an_error() {
        assert_eq!(parse(&serde_json::json!({})), EngineDisk::default());
        let odd = parse(&serde_json::json!({"Images": null, "BuildCache": [{"ID": "x"}]}));
        assert!(odd.images.is_empty());
        assert!(odd.build_cache[0].in_use && odd.build_cache[0].shared, "unknown counts as in use");
    }
}
