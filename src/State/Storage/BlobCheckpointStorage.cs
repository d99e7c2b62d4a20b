using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Azure;
using Azure.Core;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace StreamGrains.State.Storage;

/// <summary>Checkpoint storage in an Azure Blob Storage container (or Azurite).</summary>
/// <remarks>
/// <para>Every object is a block blob named <c>prefix + path</c>; a non-empty prefix ends with '/' (added when missing).
/// The XxHash64 of an object's content is stored with it as the metadata entry <c>xxhash64</c>, written in the same
/// request that commits the content, so an object never exists without its checksum.</para>
/// <para>Atomicity: a blob's content is replaced by one request (Put Blob or Put Block List), so readers see the old or
/// the new content. "Create if absent" is a conditional request (<c>If-None-Match: *</c>).</para>
/// <para>Failures: every <see cref="RequestFailedException"/> and network error is mapped to a
/// <see cref="CheckpointStorageException"/> that names the endpoint and container; transient ones are first retried by
/// the SDK's retry policy, which together with the network timeout bounds how long a call can take when the endpoint
/// does not answer.</para>
/// </remarks>
public sealed partial class BlobCheckpointStorage : ICheckpointStorage
{
    /// <summary>The metadata entry that holds the XxHash64 of the content.</summary>
    public const string ChecksumMetadataKey = "xxhash64";

    private const long MaxSmallObjectBytes = 256L << 20;

    /// <summary>The service returns a range's MD5 only for ranges up to 4 MiB.</summary>
    private const int MaxMd5RangeBytes = 4 << 20;

    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly StorageTransferOptions _transfer;
    private readonly StorageTransferOptions _downloadTransfer;
    private readonly StorageChecksumAlgorithm _validation;

    /// <summary>Creates storage in <paramref name="container"/>, naming every object <paramref name="prefix"/> + path.</summary>
    /// <param name="container">The container; its client options decide retries and timeouts.</param>
    /// <param name="prefix">A prefix for every object name; '/' is appended when it is not empty and does not end with one.</param>
    /// <param name="options">Transfer settings; null for the defaults.</param>
    public BlobCheckpointStorage(BlobContainerClient container, string prefix = "", BlobCheckpointStorageOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(container);
        ArgumentNullException.ThrowIfNull(prefix);
        if (prefix.Length > 0)
        {
            StoragePaths.Validate(prefix.TrimEnd('/'), nameof(prefix));
            prefix = prefix.TrimEnd('/') + "/";
        }

        options ??= new BlobCheckpointStorageOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaximumConcurrency, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaximumTransferSize, 1, nameof(options));
        _container = container;
        _prefix = prefix;
        _transfer = new StorageTransferOptions
        {
            MaximumConcurrency = options.MaximumConcurrency,
            MaximumTransferSize = options.MaximumTransferSize,
            InitialTransferSize = options.MaximumTransferSize,
        };
        _validation = options.TransferValidation;
        var downloadRange = _validation == StorageChecksumAlgorithm.MD5 ? Math.Min(options.MaximumTransferSize, MaxMd5RangeBytes) : options.MaximumTransferSize;
        _downloadTransfer = _transfer with { MaximumTransferSize = downloadRange, InitialTransferSize = downloadRange };
        var endpoint = new UriBuilder(container.Uri) { Query = string.Empty, Fragment = string.Empty }.Uri.ToString().TrimEnd('/');
        Location = prefix.Length == 0 ? endpoint : $"{endpoint}/{prefix.TrimEnd('/')}";
    }

    /// <summary>
    /// Creates storage from a connection string, with a client whose retry policy (exponential, 0.2 s to 2 s,
    /// <see cref="BlobCheckpointStorageOptions.MaxRetries"/>) and network timeout come from <paramref name="options"/>.
    /// </summary>
    /// <exception cref="ArgumentException">When the connection string or container name is malformed.</exception>
    public static BlobCheckpointStorage Create(string connectionString, string containerName, string prefix = "", BlobCheckpointStorageOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        ArgumentException.ThrowIfNullOrWhiteSpace(containerName);
        options ??= new BlobCheckpointStorageOptions();
        var clientOptions = ClientOptions(options);
        BlobServiceClient service;
        try
        {
            service = new BlobServiceClient(connectionString, clientOptions);
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException or ArgumentException)
        {
            // The SDK's messages about a malformed connection string do not contain its secrets.
            throw new ArgumentException($"The Blob Storage connection string is malformed: {ex.Message}", nameof(connectionString), ex);
        }

        return new BlobCheckpointStorage(service.GetBlobContainerClient(containerName), prefix, options);
    }

    /// <summary>
    /// Creates storage at the Blob service <paramref name="serviceUri"/> (e.g. <c>https://account.blob.core.windows.net</c>),
    /// authenticated by <paramref name="credential"/> (Microsoft Entra ID: a managed identity, <c>DefaultAzureCredential</c>,
    /// ...), with the same retry policy and network timeout as <see cref="Create(string, string, string, BlobCheckpointStorageOptions?)"/>.
    /// The identity needs the "Storage Blob Data Contributor" role on the container (or account).
    /// </summary>
    public static BlobCheckpointStorage Create(Uri serviceUri, TokenCredential credential, string containerName, string prefix = "", BlobCheckpointStorageOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(serviceUri);
        ArgumentNullException.ThrowIfNull(credential);
        ArgumentException.ThrowIfNullOrWhiteSpace(containerName);
        options ??= new BlobCheckpointStorageOptions();
        var service = new BlobServiceClient(serviceUri, credential, ClientOptions(options));
        return new BlobCheckpointStorage(service.GetBlobContainerClient(containerName), prefix, options);
    }

    /// <summary>Client options with the exponential retry policy (0.2 s to 2 s) and network timeout of <paramref name="options"/>.</summary>
    private static BlobClientOptions ClientOptions(BlobCheckpointStorageOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxRetries, nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.NetworkTimeout, TimeSpan.Zero, nameof(options));
        return new BlobClientOptions
        {
            Retry =
            {
                Mode = RetryMode.Exponential,
                MaxRetries = options.MaxRetries,
                Delay = TimeSpan.FromSeconds(0.2),
                MaxDelay = TimeSpan.FromSeconds(2),
                NetworkTimeout = options.NetworkTimeout,
            },
        };
    }

    /// <inheritdoc />
    /// <remarks>The container URI without query (a SAS is never shown), followed by the prefix.</remarks>
    public string Location { get; }

    /// <inheritdoc />
    /// <remarks>Creates the container when it does not exist.</remarks>
    public async Task CheckAccessAsync(CancellationToken cancellationToken)
    {
        var probe = _container.GetBlobClient($"{_prefix}.probe-{Guid.NewGuid():N}");
        var content = BinaryData.FromBytes("streamgrains checkpoint storage probe"u8.ToArray());
        try
        {
            try
            {
                await _container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 403)
            {
                // Credentials scoped to the container (a container SAS) may not create containers: the probe tells whether they can use this one.
            }

            await probe.UploadAsync(content, overwrite: false, cancellationToken);
            var read = (await probe.DownloadContentAsync(cancellationToken)).Value.Content;
            await probe.DeleteIfExistsAsync(cancellationToken: cancellationToken);
            if (!read.ToMemory().Span.SequenceEqual(content.ToMemory().Span))
            {
                throw new CheckpointStorageException($"Checkpoint storage {Location} did not read back what was written to it.");
            }
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw new CheckpointStorageException($"Checkpoint storage {Location} is not usable: {Describe(ex)}", ex);
        }
    }

    private const string MetricsKind = "blob";

    /// <inheritdoc />
    /// <remarks>The file is read twice: once to compute its XxHash64 (which must be known when the upload commits), once to upload it.</remarks>
    public async Task<StoredObject> UploadFileAsync(string localPath, string path, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        var blob = Blob(path);
        try
        {
            var (length, checksum) = await Checksums.OfFileAsync(localPath, cancellationToken);
            await blob.UploadAsync(localPath, UploadOptions(checksum, overwrite: true, singleRequest: false), cancellationToken);
            CheckpointStorageMetrics.Wrote(MetricsKind, length);
            return new StoredObject(path, length, checksum);
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("uploading to", path, ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// When <paramref name="expected"/> carries the content's XxHash64, that hash of the whole content is what checks the
    /// bytes: the SDK's per-range transfer checksum (which both this client and the service would compute) is skipped,
    /// and a mismatch is downloaded once more before the object counts as corrupt, so damage in transit is retried like
    /// a transfer checksum failure would be. Without it, the transfer checksum of <see cref="BlobCheckpointStorageOptions.TransferValidation"/> applies.
    /// </remarks>
    public async Task DownloadFileAsync(string path, string localPath, StoredObject? expected, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        var hashed = expected?.Checksum is not null;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await DownloadOnceAsync(path, Path.GetFullPath(localPath), expected, validateTransfer: !hashed, cancellationToken);
                return;
            }
            catch (CheckpointStorageCorruptException) when (hashed && attempt == 1)
            {
                // Damaged in transit or in storage: a second download tells which.
            }
        }
    }

    private async Task DownloadOnceAsync(string path, string destination, StoredObject? expected, bool validateTransfer, CancellationToken cancellationToken)
    {
        var blob = Blob(path);
        var temporary = Path.Combine(Path.GetDirectoryName(destination)!, $".tmp-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            long length;
            string checksum;

            // Written in 1 MiB blocks (the SDK hands over small chunks) and past the page cache (see LocalFileWriter).
            await using (var file = LocalFileWriter.Create(temporary))
            {
                var hashing = new HashingWriteStream(file, MetricsKind);
                await blob.DownloadToAsync(hashing, DownloadOptions(validateTransfer), cancellationToken);
                await file.CompleteAsync(flushToDisk: false, cancellationToken);
                (length, checksum) = (hashing.Length, hashing.Checksum);
            }

            Checksums.Verify(path, expected, length, checksum);
            File.Move(temporary, destination, overwrite: true);
        }
        catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode != BlobErrorCode.ContainerNotFound)
        {
            throw new CheckpointObjectNotFoundException(path, Location);
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("downloading", path, ex);
        }
        finally
        {
            DeleteQuietly(temporary);
        }
    }

    /// <inheritdoc />
    /// <remarks>One request (Put Blob) carries the whole content and its checksum; objects up to 256 MiB.</remarks>
    public async Task WriteAsync(string path, ReadOnlyMemory<byte> content, bool overwrite, CancellationToken cancellationToken)
    {
        var blob = Blob(path);
        if (content.Length > MaxSmallObjectBytes)
        {
            throw new ArgumentException($"WriteAsync is for small objects (up to {MaxSmallObjectBytes >> 20} MiB); '{path}' has {content.Length} bytes: upload it as a file.", nameof(content));
        }

        try
        {
            await blob.UploadAsync(BinaryData.FromBytes(content), UploadOptions(Checksums.Of(content.Span), overwrite, singleRequest: true), cancellationToken);
            CheckpointStorageMetrics.Wrote(MetricsKind, content.Length);
        }
        catch (RequestFailedException ex) when (!overwrite && ex.Status is 409 or 412)
        {
            throw new CheckpointStorageException($"'{path}' already exists in checkpoint storage {Location}.", ex);
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("writing", path, ex);
        }
    }

    /// <inheritdoc />
    /// <remarks>Verifies the content against the checksum stored with it, when there is one.</remarks>
    public async Task<byte[]?> ReadAsync(string path, CancellationToken cancellationToken)
    {
        var blob = Blob(path);
        BlobDownloadResult result;
        try
        {
            result = (await blob.DownloadContentAsync(cancellationToken)).Value;
        }
        catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode != BlobErrorCode.ContainerNotFound)
        {
            return null;
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("reading", path, ex);
        }

        return CheckedContent(path, result);
    }

    /// <summary>The downloaded bytes of <paramref name="path"/>, counted and checked against the checksum stored with them (when there is one).</summary>
    private static byte[] CheckedContent(string path, BlobDownloadResult result)
    {
        var content = result.Content.ToArray();
        CheckpointStorageMetrics.Fetched(MetricsKind, content.Length);
        if (result.Details.Metadata.TryGetValue(ChecksumMetadataKey, out var stored))
        {
            Checksums.Verify(path, new StoredObject(path, content.Length, stored), content.Length, Checksums.Of(content));
        }

        return content;
    }

    /// <inheritdoc />
    public async Task<bool> ExistsAsync(string path, CancellationToken cancellationToken)
    {
        var blob = Blob(path);
        bool exists;
        try
        {
            exists = (await blob.ExistsAsync(cancellationToken)).Value;
        }
        catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode != BlobErrorCode.ContainerNotFound)
        {
            exists = false;
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("checking", path, ex);
        }

        if (!exists)
        {
            await ThrowUnlessContainerExistsAsync("checking", path, cancellationToken);
        }

        return exists;
    }

    /// <summary>
    /// An object is missing only if its container is there: without the container (deleted, or another one configured)
    /// nothing can be said about the object, and a checkpoint must not be given up for it.
    /// </summary>
    private async Task ThrowUnlessContainerExistsAsync(string operation, string path, CancellationToken cancellationToken)
    {
        bool container;
        try
        {
            container = (await _container.ExistsAsync(cancellationToken)).Value;
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure(operation, path, ex);
        }

        if (!container)
        {
            throw new CheckpointStorageException($"Checkpoint storage {Location}: {operation} '{path}' failed: the container '{_container.Name}' does not exist, so whether the object exists is unknown.");
        }
    }

    /// <inheritdoc />
    public async Task DeleteAsync(string path, CancellationToken cancellationToken)
    {
        var blob = Blob(path);
        try
        {
            await blob.DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // The container does not exist: neither does the blob.
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("deleting", path, ex);
        }
    }

    /// <inheritdoc />
    public async Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        StoragePaths.Validate(prefix);
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken };
        try
        {
            await Parallel.ForEachAsync(ListCoreAsync(prefix, cancellationToken), parallel, async (stored, token) =>
                await _container.GetBlobClient(_prefix + stored.Path).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: token));
        }
        catch (CheckpointStorageException)
        {
            throw;
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // The container does not exist: there is nothing to delete.
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure("deleting everything under", prefix, ex);
        }
    }

    /// <inheritdoc />
    public IAsyncEnumerable<StoredObject> ListAsync(string prefix, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        if (prefix.Length > 0)
        {
            StoragePaths.Validate(prefix);
        }

        return ListCoreAsync(prefix, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>A server-side copy (Copy Blob within the account); content and metadata (the checksum) are copied by the service.</remarks>
    public async Task CopyAsync(string sourcePath, string destinationPath, CancellationToken cancellationToken)
    {
        var source = Blob(sourcePath);
        var destination = Blob(destinationPath);
        try
        {
            var copy = await destination.StartCopyFromUriAsync(source.Uri, options: null, cancellationToken);
            await copy.WaitForCompletionAsync(TimeSpan.FromMilliseconds(200), cancellationToken);
            var properties = (await destination.GetPropertiesAsync(cancellationToken: cancellationToken)).Value;
            if (properties.CopyStatus is not CopyStatus.Success)
            {
                throw new CheckpointStorageException($"Copying '{sourcePath}' to '{destinationPath}' in checkpoint storage {Location} ended with status {properties.CopyStatus}: {properties.CopyStatusDescription}");
            }
        }
        catch (RequestFailedException ex) when (ex.Status == 404 && ex.ErrorCode != BlobErrorCode.ContainerNotFound)
        {
            throw new CheckpointObjectNotFoundException(sourcePath, Location);
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            throw Failure($"copying '{sourcePath}' to", destinationPath, ex);
        }
    }

    private async IAsyncEnumerable<StoredObject> ListCoreAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var options = new GetBlobsOptions { Traits = BlobTraits.Metadata, Prefix = prefix.Length == 0 ? _prefix : $"{_prefix}{prefix}/" };
        await using var pages = _container.GetBlobsAsync(options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            BlobItem item;
            try
            {
                if (!await pages.MoveNextAsync())
                {
                    yield break;
                }

                item = pages.Current;
            }
            catch (RequestFailedException ex) when (ex.Status == 404)
            {
                // The container does not exist: nothing is in it.
                yield break;
            }
            catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
            {
                throw Failure("listing", prefix, ex);
            }

            var checksum = item.Metadata is { } metadata && metadata.TryGetValue(ChecksumMetadataKey, out var value) ? value : null;
            yield return new StoredObject(item.Name[_prefix.Length..], item.Properties.ContentLength ?? 0, checksum);
        }
    }

    private BlobClient Blob(string path)
    {
        StoragePaths.Validate(path);
        return _container.GetBlobClient(_prefix + path);
    }

    private BlobUploadOptions UploadOptions(string checksum, bool overwrite, bool singleRequest) => new()
    {
        Metadata = new Dictionary<string, string> { [ChecksumMetadataKey] = checksum },
        Conditions = overwrite ? null : new BlobRequestConditions { IfNoneMatch = ETag.All },
        TransferOptions = singleRequest
            ? new StorageTransferOptions { InitialTransferSize = MaxSmallObjectBytes, MaximumTransferSize = MaxSmallObjectBytes, MaximumConcurrency = 1 }
            : _transfer,
        TransferValidation = new UploadTransferValidationOptions { ChecksumAlgorithm = _validation },
    };

    private BlobDownloadToOptions DownloadOptions(bool validateTransfer) => new()
    {
        TransferOptions = validateTransfer ? _downloadTransfer : _transfer,
        TransferValidation = new DownloadTransferValidationOptions { ChecksumAlgorithm = validateTransfer ? _validation : StorageChecksumAlgorithm.None },
    };

    private static void DeleteQuietly(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Leaves a ".tmp-" file behind; the failure that matters is the one already propagating.
        }
    }

    /// <summary>Whether <paramref name="exception"/> is a storage or network failure to report as <see cref="CheckpointStorageException"/>.</summary>
    /// <remarks>Cancellation requested by the caller is not a failure and propagates as it is.</remarks>
    private static bool IsStorageFailure(Exception exception, CancellationToken cancellationToken) => exception switch
    {
        CheckpointStorageException => false,
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        RequestFailedException or AggregateException or HttpRequestException or SocketException or IOException or TimeoutException or UnauthorizedAccessException or InvalidDataException => true,
        _ => false,
    };

    private CheckpointStorageException Failure(string operation, string path, Exception exception) =>
        new($"Checkpoint storage {Location}: {operation} '{path}' failed: {Describe(exception)}", exception);

    /// <summary>A one-line reason for a failure, without the SDK's multi-line request dump.</summary>
    private static string Describe(Exception exception)
    {
        switch (exception)
        {
            case AggregateException aggregate:
                var last = aggregate.InnerExceptions.Count > 0 ? aggregate.InnerExceptions[^1] : aggregate;
                return $"{Describe(last)} (gave up after {aggregate.InnerExceptions.Count} attempts)";
            case RequestFailedException { Status: 0 } failed:
                return $"the endpoint is unreachable: {Innermost(failed).Message}";
            case RequestFailedException { Status: 403 } failed when failed.ErrorCode is { } code && code.StartsWith("AuthorizationPermission", StringComparison.Ordinal):
                return $"the credentials are not authorized for this operation ({code}): grant read, write, delete, list and create permissions";
            case RequestFailedException { Status: 401 or 403 } failed:
                return $"authentication failed ({failed.ErrorCode ?? failed.Status.ToString(System.Globalization.CultureInfo.InvariantCulture)}): check the account name and key or SAS in the connection string";
            case RequestFailedException { Status: 400 } failed when failed.ErrorCode is "InvalidResourceName" or "OutOfRangeInput" or "InvalidUri":
                return $"the container name is invalid ({failed.ErrorCode}): use 3-63 lowercase letters, digits and single dashes";
            case RequestFailedException { Status: 404 } failed when failed.ErrorCode == BlobErrorCode.ContainerNotFound:
                return "the container does not exist (CheckAccessAsync creates it)";
            case RequestFailedException failed:
                return $"HTTP {failed.Status} {failed.ErrorCode}: {FirstLine(failed.Message)}";
            case InvalidDataException:
                return $"the content was damaged in transit (transfer checksum mismatch): {exception.Message}";
            case OperationCanceledException or TimeoutException:
                return $"the endpoint did not answer in time: {exception.Message}";
            case HttpRequestException or SocketException:
                return $"the endpoint is unreachable: {Innermost(exception).Message}";
            default:
                return exception.Message;
        }
    }

    private static Exception Innermost(Exception exception)
    {
        while (exception.InnerException is { } inner)
        {
            exception = inner;
        }

        return exception;
    }

    private static string FirstLine(string message)
    {
        var end = message.IndexOfAny(['\r', '\n']);
        return end < 0 ? message : message[..end];
    }
}
