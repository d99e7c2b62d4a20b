namespace StreamGrains.State.Storage;

/// <summary>Where checkpoint storage is (section <c>StreamGrains:CheckpointStorage</c> of appsettings.json).</summary>
/// <remarks>
/// A class rather than a record on purpose: a record's generated <c>ToString</c> would print the connection string,
/// account key included, wherever options are logged.
/// </remarks>
public sealed class CheckpointStorageOptions
{
    /// <summary>The <see cref="Kind"/> of <see cref="FileSystemCheckpointStorage"/>.</summary>
    public const string FileSystemKind = "FileSystem";

    /// <summary>The <see cref="Kind"/> of <see cref="BlobCheckpointStorage"/>.</summary>
    public const string AzureBlobKind = "AzureBlob";

    /// <summary><c>FileSystem</c> (default) or <c>AzureBlob</c>.</summary>
    public string Kind { get; set; } = FileSystemKind;

    /// <summary>For <c>FileSystem</c>: the root directory (shared by all silos in a multi-machine cluster).</summary>
    public string Path { get; set; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "streamgrains", "checkpoints");

    /// <summary>
    /// For <c>FileSystem</c>: whether a restore hard-links stored files into the working directory instead of copying
    /// them, when the OS can link the two paths (same device). Default true.
    /// </summary>
    public bool LinkOnRestore { get; set; } = true;

    /// <summary>For <c>AzureBlob</c>: the storage account's connection string.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>For <c>AzureBlob</c>: the container (created by the first access check when missing).</summary>
    public string? Container { get; set; }

    /// <summary>For <c>AzureBlob</c>: a prefix for every object name (optional), e.g. <c>prod/</c>.</summary>
    public string Prefix { get; set; } = string.Empty;

    /// <summary>For <c>AzureBlob</c>: retries of a failed request. Default 3.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>For <c>AzureBlob</c>: timeout of one network operation of one request attempt. Default 30 s.</summary>
    public TimeSpan NetworkTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Returns the problems with these settings; empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        List<string> errors = [];
        switch (Kind)
        {
            case FileSystemKind:
                if (string.IsNullOrWhiteSpace(Path))
                {
                    errors.Add("CheckpointStorage:Path must be set for FileSystem storage.");
                }

                break;
            case AzureBlobKind:
                if (string.IsNullOrWhiteSpace(ConnectionString))
                {
                    errors.Add("CheckpointStorage:ConnectionString must be set for AzureBlob storage.");
                }

                if (string.IsNullOrEmpty(Container))
                {
                    errors.Add("CheckpointStorage:Container must be set for AzureBlob storage.");
                }
                else if (!IsValidContainerName(Container))
                {
                    errors.Add($"CheckpointStorage:Container '{Container}' is not a valid container name (3-63 characters: lowercase letters, digits and single dashes, starting and ending with a letter or digit).");
                }

                if (Prefix.Length > 0 && !StoragePaths.IsValid(Prefix.TrimEnd('/')))
                {
                    errors.Add($"CheckpointStorage:Prefix '{Prefix}' is not a valid prefix ('/'-separated, without a leading '/', '\\', or empty, '.' or '..' segments).");
                }

                if (MaxRetries < 0)
                {
                    errors.Add($"CheckpointStorage:MaxRetries must not be negative (it is {MaxRetries}).");
                }

                if (NetworkTimeout <= TimeSpan.Zero)
                {
                    errors.Add($"CheckpointStorage:NetworkTimeout must be positive (it is {NetworkTimeout}).");
                }

                break;
            default:
                errors.Add($"CheckpointStorage:Kind '{Kind}' is not supported; use {FileSystemKind} or {AzureBlobKind}.");
                break;
        }

        return errors;
    }

    /// <summary>Creates the storage these options describe.</summary>
    /// <exception cref="ArgumentException">When the options are invalid; the message lists every problem.</exception>
    public ICheckpointStorage Create()
    {
        var errors = Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", errors));
        }

        return Kind switch
        {
            FileSystemKind => new FileSystemCheckpointStorage(Path) { LinkOnRestore = LinkOnRestore },
            _ => BlobCheckpointStorage.Create(ConnectionString!, Container!, Prefix, new BlobCheckpointStorageOptions { MaxRetries = MaxRetries, NetworkTimeout = NetworkTimeout }),
        };
    }

    /// <summary>Azure's rule: 3-63 characters, lowercase letters, digits and dashes, starting and ending with a letter or digit, no two dashes in a row.</summary>
    internal static bool IsValidContainerName(string name) =>
        name.Length is >= 3 and <= 63
        && name.All(static c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')
        && char.IsAsciiLetterOrDigit(name[0]) && char.IsAsciiLetterOrDigit(name[^1])
        && !name.Contains("--", StringComparison.Ordinal);
}
