namespace StreamGrains.State.Storage;

/// <summary>
/// A checkpoint storage that passes every call to another one; override the calls to decorate (fault injection,
/// metering, throttling).
/// </summary>
/// <remarks>
/// The optional capabilities pass through too: <see cref="TryLinkFileAsync"/> links when the inner storage can. A
/// decorator that must see every byte a restore reads (one that holds, fails or counts downloads) overrides it to
/// return false, so that restores download.
/// </remarks>
/// <param name="inner">The storage calls go to.</param>
public abstract class DelegatingCheckpointStorage(ICheckpointStorage inner) : ICheckpointStorage, ILinkingCheckpointStorage, IConditionalCheckpointStorage
{
    /// <summary>The storage calls go to.</summary>
    protected ICheckpointStorage Inner { get; } = inner ?? throw new ArgumentNullException(nameof(inner));

    /// <inheritdoc />
    public virtual string Location => Inner.Location;

    /// <inheritdoc />
    public virtual Task CheckAccessAsync(CancellationToken cancellationToken) => Inner.CheckAccessAsync(cancellationToken);

    /// <inheritdoc />
    public virtual Task<StoredObject> UploadFileAsync(string localPath, string path, CancellationToken cancellationToken) => Inner.UploadFileAsync(localPath, path, cancellationToken);

    /// <inheritdoc />
    public virtual Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) => Inner.DownloadFileAsync(path, localPath, expected, cancellationToken);

    /// <inheritdoc />
    public virtual Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken) => Inner.WriteAsync(path, content, overwrite, cancellationToken);

    /// <inheritdoc />
    public virtual Task<byte[]?> ReadAsync(string path, CancellationToken cancellationToken) => Inner.ReadAsync(path, cancellationToken);

    /// <inheritdoc />
    public virtual Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) => Inner.ExistsAsync(path, cancellationToken);

    /// <inheritdoc />
    public virtual Task DeleteAsync(string path, CancellationToken cancellationToken) => Inner.DeleteAsync(path, cancellationToken);

    /// <inheritdoc />
    public virtual Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken) => Inner.DeletePrefixAsync(prefix, cancellationToken);

    /// <inheritdoc />
    public virtual IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken) => Inner.ListAsync(prefix, cancellationToken);

    /// <inheritdoc />
    public virtual Task CopyAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken) => Inner.CopyAsync(sourcePath, destinationPath, cancellationToken);

    /// <inheritdoc />
    /// <remarks>False when the inner storage cannot link (it does not implement <see cref="ILinkingCheckpointStorage"/>).</remarks>
    public virtual Task<bool> TryLinkFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken) =>
        Inner is ILinkingCheckpointStorage linking ? linking.TryLinkFileAsync(path, localPath, expected, cancellationToken) : Task.FromResult(false);

    /// <inheritdoc />
    /// <remarks>Without the capability in the inner storage: a plain read, versioned by the content's XxHash64.</remarks>
    public virtual async Task<VersionedObject?> ReadVersionedAsync(string path, CancellationToken cancellationToken) =>
        Inner is IConditionalCheckpointStorage conditional
            ? await conditional.ReadVersionedAsync(path, cancellationToken)
            : await ReadAsync(path, cancellationToken) is { } content ? new VersionedObject(content, Checksums.Of(content)) : null;

    /// <inheritdoc />
    /// <remarks>Without the capability in the inner storage: a read, a comparison and a write, which is not atomic.</remarks>
    public virtual async Task<string> WriteIfAsync(string path, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellationToken)
    {
        if (Inner is IConditionalCheckpointStorage conditional)
        {
            return await conditional.WriteIfAsync(path, content, expectedVersion, cancellationToken);
        }

        if ((await ReadVersionedAsync(path, cancellationToken))?.Version != expectedVersion)
        {
            throw new CheckpointWriteConflictException($"'{path}' in checkpoint storage {Location} is not at version {expectedVersion ?? "(none)"}.");
        }

        await WriteAsync(path, content, overwrite: expectedVersion is not null, cancellationToken);
        return Checksums.Of(content.Span);
    }
}
