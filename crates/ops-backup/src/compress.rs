//! Compression of the dump stream: gzip or zstd (multi-threaded).
//!
//! gzip is a multi-member stream: every 256 KiB of dump is its own gzip member, compressed by
//! libdeflate on several threads (gzp's Mgzip). `gzip -t`, `gunzip | psql` and every other
//! gzip reader read the members as one stream. Members without a shared dictionary cost
//! little (level 1: 0.368 of a plain dump, against 0.377 for zlib-rs level 2 in one stream and
//! 0.354 for `gzip -6`) and libdeflate compresses in less CPU time than zlib; see
//! BENCHMARKS.md.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Compression of a dump.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (`.sql.gz`), the runbooks' format.
    #[default]
    Gzip,
    /// zstd (`.sql.zst`).
    Zstd,
}

impl Compression {
    /// File extension including the dot and `.sql`.
    #[must_use]
    pub const fn extension(self) -> &'static str {
        match self {
            Self::Gzip => ".sql.gz",
            Self::Zstd => ".sql.zst",
        }
    }

    /// Default level: gzip 1 (libdeflate's fastest, within 4 % of `gzip -6`'s size at a
    /// fraction of its CPU time, measured in BENCHMARKS.md), zstd 3.
    #[must_use]
    pub const fn default_level(self) -> u32 {
        match self {
            Self::Gzip => 1,
            Self::Zstd => 3,
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gzip" | "gz" => Ok(Self::Gzip),
            "zstd" | "zst" => Ok(Self::Zstd),
            other => Err(format!("unknown compression {other:?}: use gzip or zstd")),
        }
    }
}

/// A compressing writer that must be finished to write its trailer.
pub(crate) trait Encoder: Write {
    /// Writes the trailer and flushes everything to the inner writer.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// gzip in members of [`MGZIP_BLOCK`]: `Z` is gzp's parallel writer, or for one thread its
/// one-thread writer built here (gzp's own one-thread builder ignores the block size and
/// writes 128 KiB members).
struct GzipEncoder<Z: Write>(Z);

/// Largest write handed to gzp at once: its single-threaded writer compresses at most one
/// member per call and would otherwise buffer the rest of a large write.
const GZIP_WRITE_MAX: usize = 64 * 1024;

impl<Z: Write> Write for GzipEncoder<Z> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(&buf[..buf.len().min(GZIP_WRITE_MAX)])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send + 'static> Encoder for GzipEncoder<Box<dyn gzp::ZWriter<W>>> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.0.finish().map(drop).map_err(|e| io::Error::other(format!("gzip: {e}")))
    }
}

impl<W: Write + Send + 'static> Encoder for GzipEncoder<gzp::mgzip::MgzipSyncWriter<W>> {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        // Compresses the last member and flushes the sink; dropping the writer afterwards
        // has nothing left to write.
        self.0.flush()
    }
}

struct ZstdEncoder<W: Write + Send>(zstd::stream::write::Encoder<'static, W>);

impl<W: Write + Send> Write for ZstdEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> Encoder for ZstdEncoder<W> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish().and_then(|mut w| w.flush())
    }
}

/// Bytes of dump per gzip member: larger members compress a little better and hold more
/// memory per thread (1 MiB: 1.5 % smaller, 14 MiB more peak RSS).
const MGZIP_BLOCK: usize = 256 * 1024;

/// Bytes per zstd job when several threads compress.
const ZSTD_JOB_BYTES: u32 = 4 * 1024 * 1024;

/// An encoder writing into `sink` with `threads` compression threads (0 or 1: one).
pub(crate) fn encoder<W: Write + Send + 'static>(
    compression: Compression,
    level: u32,
    threads: usize,
    sink: W,
) -> io::Result<Box<dyn Encoder>> {
    Ok(match compression {
        Compression::Gzip if threads <= 1 => Box::new(GzipEncoder(gzp::mgzip::MgzipSyncWriter::with_capacity(
            sink,
            gzp::Compression::new(level.min(9)),
            MGZIP_BLOCK,
        ))),
        Compression::Gzip => {
            let z = gzp::ZBuilder::<gzp::deflate::Mgzip, W>::new()
                .num_threads(threads)
                .buffer_size(MGZIP_BLOCK)
                .compression_level(gzp::Compression::new(level.min(9)))
                .from_writer(sink);
            Box::new(GzipEncoder(z))
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(sink, i32::try_from(level.min(19)).unwrap_or(3))?;
            if threads > 1 {
                e.multithread(u32::try_from(threads).unwrap_or(1))?;
                // Smaller jobs than zstd's default (8 MiB at level 3), each worker holding
                // one: the peak memory roughly halves for the same speed (`zstd -T2 -B4MiB`).
                e.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_BYTES))?;
            }
            Box::new(ZstdEncoder(e))
        }
    })
}

/// A reader decompressing `inner` (multi-member gzip is read to the end).
pub(crate) fn decoder<'a, R: Read + 'a>(compression: Compression, inner: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(inner)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(inner)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compresses a 6 MB dump-like text and checks that it decompresses to the same; returns
    /// the compressed bytes.
    fn round_trip(c: Compression, threads: usize) -> Vec<u8> {
        let text: Vec<u8> =
            (0..200_000).flat_map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n").into_bytes()).collect();
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut e = encoder(c, 3, threads, Shared(out.clone())).unwrap();
        for chunk in text.chunks(70_000) {
            e.write_all(chunk).unwrap();
        }
        e.finish().unwrap();
        let compressed = out.lock().unwrap().clone();
        assert!(compressed.len() < text.len() / 3, "{c} compresses");
        let mut back = Vec::new();
        decoder(c, &compressed[..]).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == text, "{c} with {threads} threads round-trips");
        compressed
    }

    /// The decompressed size of every gzip member of `gz`.
    fn member_sizes(mut gz: &[u8]) -> Vec<usize> {
        let mut sizes = Vec::new();
        while !gz.is_empty() {
            let mut d = flate2::bufread::GzDecoder::new(gz);
            let mut out = Vec::new();
            d.read_to_end(&mut out).unwrap();
            sizes.push(out.len());
            gz = d.into_inner();
        }
        sizes
    }

    #[test]
    fn gzip_parallel_and_single() {
        for threads in [2, 1, 0] {
            let sizes = member_sizes(&round_trip(Compression::Gzip, threads));
            // Members of `MGZIP_BLOCK` whatever the thread count, the last one shorter.
            let (last, full) = sizes.split_last().unwrap();
            assert!(full.len() > 10 && full.iter().all(|&s| s == MGZIP_BLOCK), "{threads} threads: {sizes:?}");
            assert!(*last <= MGZIP_BLOCK, "{threads} threads: {sizes:?}");
        }
    }

    #[test]
    fn zstd_parallel_and_single() {
        round_trip(Compression::Zstd, 2);
        round_trip(Compression::Zstd, 1);
    }
}
