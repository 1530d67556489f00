//! The S3 backend of the in-process test server ([`crate::test_server`]): s3s-fs for every
//! operation (buckets are directories, objects files, with its ETags, checksums, conditional
//! and multipart puts), except that the body of a `GetObject` is read in large positional reads
//! instead of s3s-fs's 4 KiB `tokio::fs` reads (one blocking-pool hop per 4 KiB, ≈ 140 MB/s on
//! two cores). s3s-fs still answers the request (existence, range check, headers); only the
//! stream of bytes it would have sent is replaced by the same bytes read [`CHUNK`] at a time.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use s3s_fs::FileSystem;

/// Bytes read per blocking read of a `GetObject` body.
pub(crate) const CHUNK: usize = 1 << 20;

/// s3s-fs with large reads for object bodies.
pub(crate) struct TestFs {
    inner: FileSystem,
    root: PathBuf,
}

impl TestFs {
    /// Serves `root` (buckets are its subdirectories).
    pub(crate) fn new(root: &Path) -> io::Result<Self> {
        let inner = FileSystem::new(root).map_err(|e| io::Error::other(format!("{e:?}")))?;
        Ok(Self {
            inner,
            root: root.canonicalize()?,
        })
    }

    /// The file of `bucket`/`key`, refused outside the root.
    fn object_path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        let p = self.root.join(bucket).join(key);
        if p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
            || !p.starts_with(&self.root)
        {
            return Err(s3_error!(InvalidArgument, "key outside the bucket"));
        }
        Ok(p)
    }
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/LEN` (0 without one).
fn range_start(content_range: Option<&str>) -> Option<u64> {
    let Some(r) = content_range else {
        return Some(0);
    };
    r.strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}

/// `len` bytes of `file` from `offset`, [`CHUNK`] bytes per blocking read.
fn body(
    file: std::fs::File,
    offset: u64,
    len: u64,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + Sync + 'static {
    let file = Arc::new(file);
    futures::stream::try_unfold((offset, len), move |(at, left)| {
        let file = file.clone();
        async move {
            if left == 0 {
                return Ok(None);
            }
            let n = left.min(CHUNK as u64) as usize;
            let buf = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, at).map(|()| buf)
            })
            .await
            .map_err(io::Error::other)??;
            Ok(Some((Bytes::from(buf), (at + n as u64, left - n as u64))))
        }
    })
}

macro_rules! delegate {
    ($($op:ident: $input:ident => $output:ident,)*) => {
        #[async_trait::async_trait]
        impl S3 for TestFs {
            async fn get_object(
                &self,
                req: S3Request<GetObjectInput>,
            ) -> S3Result<S3Response<GetObjectOutput>> {
                let path = self.object_path(&req.input.bucket, &req.input.key)?;
                let mut resp = self.inner.get_object(req).await?;
                let out = &mut resp.output;
                let len = out.content_length.and_then(|l| u64::try_from(l).ok());
                let start = range_start(out.content_range.as_deref());
                let (Some(len), Some(start)) = (len, start) else {
                    return Err(s3_error!(InternalError, "no length or range in the answer"));
                };
                // s3s-fs's own (unread) stream is dropped here.
                let file = std::fs::File::open(&path).map_err(|e| s3_error!(e, NoSuchKey))?;
                out.body = Some(StreamingBlob::wrap(body(file, start, len)));
                Ok(resp)
            }
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.inner.$op(req).await
                }
            )*
        }
    };
}

delegate! {
    create_bucket: CreateBucketInput => CreateBucketOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    head_object: HeadObjectInput => HeadObjectOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    put_object: PutObjectInput => PutObjectOutput,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start() {
        assert_eq!(range_start(None), Some(0));
        assert_eq!(range_start(Some("bytes 100-299/10000")), Some(100));
        assert_eq!(range_start(Some("garbage")), None);
    }
}
