using Azure.Storage;

namespace StreamGrains.State.Storage;

/// <summary>Settings of <see cref="BlobCheckpointStorage"/>.</summary>
public sealed class BlobCheckpointStorageOptions
{
    /// <summary>Retries of a failed request (exponential back-off from 0.2 s to 2 s). Default 3.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>Timeout of one network operation of one request attempt. Default 30 s.</summary>
    public TimeSpan NetworkTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Parallel requests of one upload or download. Default 4.</summary>
    public int MaximumConcurrency { get; set; } = 4;

    /// <summary>Size of one block of an upload or one range of a download. Default 8 MiB.</summary>
    public int MaximumTransferSize { get; set; } = 8 << 20;

    /// <summary>
    /// Checksum the SDK adds to every upload request and to downloads of objects whose XxHash64 the caller does not
    /// know, so that the service and this client reject bytes damaged in transit. Downloads of files with a known
    /// XxHash64 (every restore) are checked by that hash of the whole content instead, and downloaded once more on a
    /// mismatch. Default <see cref="StorageChecksumAlgorithm.MD5"/> (such downloads then use ranges of at most 4 MiB,
    /// the largest the service returns an MD5 for); <see cref="StorageChecksumAlgorithm.None"/> turns it off.
    /// <see cref="StorageChecksumAlgorithm.StorageCrc64"/> and <see cref="StorageChecksumAlgorithm.Auto"/> use the
    /// service's "structured message" encoding, which Azurite 3.37 does not support.
    /// </summary>
    public StorageChecksumAlgorithm TransferValidation { get; set; } = StorageChecksumAlgorithm.MD5;
}
