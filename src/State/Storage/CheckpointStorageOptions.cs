using Azure.Core;
using Azure.Storage.Blobs;

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

    /// <summary>For <c>AzureBlob</c>: the storage account's connection string (or set <see cref="ServiceUri"/> instead).</summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// For <c>AzureBlob</c>: the account's Blob service URI, e.g. <c>https://account.blob.core.windows.net</c>, used with
    /// <see cref="Credential"/> or <see cref="TokenCredential"/> instead of <see cref="ConnectionString"/>.
    /// </summary>
    public string? ServiceUri { get; set; }

    /// <summary>
    /// For <c>AzureBlob</c> with <see cref="ServiceUri"/>: the Microsoft Entra ID credential,
    /// <c>DefaultAzureCredential</c> or <c>ManagedIdentity</c> (see <see cref="AzureCredentials"/>).
    /// </summary>
    public string? Credential { get; set; }

    /// <summary>For <see cref="Credential"/>: the client id of a user-assigned managed identity (optional).</summary>
    public string? ManagedIdentityClientId { get; set; }

    /// <summary>
    /// For <c>AzureBlob</c> with <see cref="ServiceUri"/>, set in code instead of <see cref="Credential"/>: any
    /// <see cref="Azure.Core.TokenCredential"/> (a library user's own, e.g. a <c>ClientSecretCredential</c>).
    /// </summary>
    public TokenCredential? TokenCredential { get; set; }

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
                errors.AddRange(AzureCredentials.Validate(
                    "CheckpointStorage:", nameof(ConnectionString), ConnectionString, nameof(ServiceUri), ServiceUri, nameof(Credential), Credential, TokenCredential is not null));

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

        if (Kind == FileSystemKind)
        {
            return new FileSystemCheckpointStorage(Path) { LinkOnRestore = LinkOnRestore };
        }

        var blobOptions = new BlobCheckpointStorageOptions { MaxRetries = MaxRetries, NetworkTimeout = NetworkTimeout };
        return string.IsNullOrWhiteSpace(ServiceUri)
            ? BlobCheckpointStorage.Create(ConnectionString!, Container!, Prefix, blobOptions)
            : BlobCheckpointStorage.Create(new Uri(ServiceUri), CreateTokenCredential(), Container!, Prefix, blobOptions);
    }

    /// <summary>The credential for <see cref="ServiceUri"/>: <see cref="TokenCredential"/> when set, else the one <see cref="Credential"/> names.</summary>
    public TokenCredential CreateTokenCredential() =>
        TokenCredential ?? AzureCredentials.Create(Credential ?? throw new InvalidOperationException("CheckpointStorage:Credential is not set."), ManagedIdentityClientId);

    /// <summary>
    /// Where these options put checkpoints, for a log line: the absolute directory, or the Blob container URI with the
    /// prefix and how the silo authenticates. Never contains a key or SAS token. The options should be valid.
    /// </summary>
    public string Describe()
    {
        if (Kind != AzureBlobKind)
        {
            return $"{Kind} {System.IO.Path.GetFullPath(Path)}";
        }

        string endpoint;
        string authentication;
        if (string.IsNullOrWhiteSpace(ServiceUri))
        {
            try
            {
                endpoint = AzureCredentials.WithoutQuery(new BlobServiceClient(ConnectionString).Uri);
            }
            catch (Exception ex) when (ex is FormatException or InvalidOperationException or ArgumentException)
            {
                endpoint = "(malformed connection string)";
            }

            authentication = "connection string";
        }
        else
        {
            endpoint = ServiceUri.TrimEnd('/');
            authentication = TokenCredential is not null ? TokenCredential.GetType().Name : Credential + (string.IsNullOrWhiteSpace(ManagedIdentityClientId) ? string.Empty : $", client id {ManagedIdentityClientId}");
        }

        var prefix = Prefix.Trim('/');
        return $"{Kind} {endpoint}/{Container}{(prefix.Length == 0 ? string.Empty : "/" + prefix)} ({authentication})";
    }

    /// <summary>Azure's rule: 3-63 characters, lowercase letters, digits and dashes, starting and ending with a letter or digit, no two dashes in a row.</summary>
    internal static bool IsValidContainerName(string name) =>
        name.Length is >= 3 and <= 63
        && name.All(static c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')
        && char.IsAsciiLetterOrDigit(name[0]) && char.IsAsciiLetterOrDigit(name[^1])
        && !name.Contains("--", StringComparison.Ordinal);
}
