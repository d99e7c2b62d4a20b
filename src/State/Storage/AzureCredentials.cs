using Azure.Core;
using Azure.Identity;

namespace StreamGrains.State.Storage;

/// <summary>
/// The Microsoft Entra ID credentials a silo's settings can name for Azure Storage (Blob checkpoint storage, Table
/// clustering) instead of a connection string.
/// </summary>
public static class AzureCredentials
{
    /// <summary>The name of <see cref="DefaultAzureCredential"/>: environment, workload identity, managed identity, then developer tools.</summary>
    public const string Default = "DefaultAzureCredential";

    /// <summary>The name of <see cref="ManagedIdentityCredential"/>: the system-assigned identity, or a user-assigned one by client id.</summary>
    public const string ManagedIdentity = "ManagedIdentity";

    /// <summary>Whether <paramref name="name"/> is one of the names above (compared ordinally, ignoring case).</summary>
    public static bool IsKnown(string? name) =>
        string.Equals(name, Default, StringComparison.OrdinalIgnoreCase) || string.Equals(name, ManagedIdentity, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Creates the credential named <paramref name="name"/>. <paramref name="managedIdentityClientId"/>, when set, selects
    /// a user-assigned managed identity (for <see cref="Default"/> its managed-identity step, for <see cref="ManagedIdentity"/>
    /// the identity itself).
    /// </summary>
    /// <exception cref="ArgumentException">When <paramref name="name"/> is not a known credential name.</exception>
    public static TokenCredential Create(string name, string? managedIdentityClientId = null)
    {
        var clientId = string.IsNullOrWhiteSpace(managedIdentityClientId) ? null : managedIdentityClientId;
        if (string.Equals(name, Default, StringComparison.OrdinalIgnoreCase))
        {
            return new DefaultAzureCredential(new DefaultAzureCredentialOptions { ManagedIdentityClientId = clientId });
        }

        if (string.Equals(name, ManagedIdentity, StringComparison.OrdinalIgnoreCase))
        {
            return new ManagedIdentityCredential(clientId is null ? ManagedIdentityId.SystemAssigned : ManagedIdentityId.FromUserAssignedClientId(clientId));
        }

        throw new ArgumentException($"Unknown credential '{name}'; use {Default} or {ManagedIdentity}.", nameof(name));
    }

    /// <summary>
    /// The problems with one pair of "connection string or service URI with credential" settings, each message naming
    /// the setting by <paramref name="prefix"/> and the given setting names; empty when valid.
    /// </summary>
    /// <param name="prefix">The settings' section, e.g. <c>CheckpointStorage:</c>.</param>
    /// <param name="connectionStringName">Name of the connection-string setting.</param>
    /// <param name="connectionString">Its value.</param>
    /// <param name="serviceUriName">Name of the service-URI setting.</param>
    /// <param name="serviceUri">Its value.</param>
    /// <param name="credentialName">Name of the credential setting.</param>
    /// <param name="credential">Its value.</param>
    /// <param name="hasTokenCredential">Whether a <see cref="TokenCredential"/> object was given in code (it counts as a credential).</param>
    public static IEnumerable<string> Validate(
        string prefix,
        string connectionStringName,
        string? connectionString,
        string serviceUriName,
        string? serviceUri,
        string credentialName,
        string? credential,
        bool hasTokenCredential = false)
    {
        var hasConnectionString = !string.IsNullOrWhiteSpace(connectionString);
        var hasServiceUri = !string.IsNullOrWhiteSpace(serviceUri);
        var hasCredential = !string.IsNullOrWhiteSpace(credential);
        if (hasConnectionString == hasServiceUri)
        {
            yield return $"{prefix}{connectionStringName} or {prefix}{serviceUriName} (with {prefix}{credentialName}) must be set, exactly one of them.";
            yield break;
        }

        if (hasConnectionString)
        {
            if (hasCredential || hasTokenCredential)
            {
                yield return $"{prefix}{credentialName} goes with {prefix}{serviceUriName}, not with {prefix}{connectionStringName} (which carries its own key or SAS).";
            }

            yield break;
        }

        if (!Uri.TryCreate(serviceUri, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
        {
            yield return $"{prefix}{serviceUriName} '{serviceUri}' is not an absolute http(s) URI such as https://account.blob.core.windows.net.";
        }
        else if (uri.Query.Length > 0)
        {
            yield return $"{prefix}{serviceUriName} must not have a query (a SAS belongs in {prefix}{connectionStringName}).";
        }

        if (hasCredential && hasTokenCredential)
        {
            yield return $"{prefix}{credentialName} is set and a TokenCredential was given in code; give only one.";
        }
        else if (!hasCredential && !hasTokenCredential)
        {
            yield return $"{prefix}{serviceUriName} needs {prefix}{credentialName}: {Default} or {ManagedIdentity}.";
        }
        else if (hasCredential && !IsKnown(credential))
        {
            yield return $"{prefix}{credentialName} '{credential}' is not supported; use {Default} or {ManagedIdentity}.";
        }
    }

    /// <summary>A URI without its query and fragment (so that no SAS token is shown), without a trailing '/'.</summary>
    public static string WithoutQuery(Uri uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        return new UriBuilder(uri) { Query = string.Empty, Fragment = string.Empty }.Uri.ToString().TrimEnd('/');
    }
}
