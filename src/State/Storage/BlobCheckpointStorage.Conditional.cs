using Azure;
using Azure.Storage.Blobs.Models;

namespace StreamGrains.State.Storage;

/// <summary>Conditional writes on Blob Storage: the blob's ETag is the version (<c>If-Match</c>, or <c>If-None-Match: *</c> to create).</summary>
public sealed partial class BlobCheckpointStorage : IConditionalCheckpointStorage
{
    /// <inheritdoc />
    /// <remarks>
    /// Verifies the content against the checksum stored with it, when there is one. A missing container reads as a
    /// missing object (no record can be in it; the first write creates it).
    /// </remarks>
    public async Task<VersionedObject?> ReadVersionedAsync(string path, CancellationToken cancellationToken)
    {
        BlobDownloadResult result;
        try
        {
            result = (await Blob(path).DownloadContentAsync(cancellationToken)).Value;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            return null;
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("reading", path, ex);
        }

        var content = CheckedContent(path, result);

        return new VersionedObject(content, result.Details.ETag.ToString());
    }

    /// <inheritdoc />
    public async Task<string> WriteIfAsync(string path, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellationToken)
    {
        if (content.Length > MaxSmallObjectBytes)
        {
            throw new ArgumentException($"WriteIfAsync is for small objects (up to {MaxSmallObjectBytes >> 20} MiB); '{path}' has {content.Length} bytes.", nameof(content));
        }

        var options = UploadOptions(Checksums.Of(content.Span), overwrite: true, singleRequest: true);
        options.Conditions = expectedVersion is null ? new BlobRequestConditions { IfNoneMatch = ETag.All } : new BlobRequestConditions { IfMatch = new ETag(expectedVersion) };
        try
        {
            var info = await Blob(path).UploadAsync(BinaryData.FromBytes(content), options, cancellationToken);
            CheckpointStorageMetrics.Wrote(MetricsKind, content.Length);
            return info.Value.ETag.ToString();
        }
        catch (RequestFailedException ex) when (ex.Status is 409 or 412 || (ex.Status == 404 && ex.ErrorCode != BlobErrorCode.ContainerNotFound))
        {
            throw new CheckpointWriteConflictException($"'{path}' in checkpoint storage {Location} is not at version {expectedVersion ?? "(none)"}: another writer changed it ({ex.ErrorCode}).");
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("writing", path, ex);
        }
    }
}
