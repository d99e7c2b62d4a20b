using System.Globalization;
using System.Net;
using Azure.Data.Tables;
using StreamGrains.State.Storage;

namespace StreamGrains.Silo;

/// <summary>How the silo joins its cluster (section <c>Cluster</c> of appsettings.json).</summary>
internal sealed class ClusterSettings
{
    public const string SectionName = "Cluster";

    public string ClusterId { get; set; } = "streamgrains";

    public string ServiceId { get; set; } = "streamgrains";

    /// <summary><c>Localhost</c> (development: silos on one machine, the first is primary) or <c>AzureStorage</c> (membership table in Azure Table Storage).</summary>
    public string Clustering { get; set; } = "Localhost";

    /// <summary>For <c>AzureStorage</c>: the storage account's connection string (or set <see cref="AzureStorageServiceUri"/> instead).</summary>
    public string? AzureStorageConnectionString { get; set; }

    /// <summary>For <c>AzureStorage</c>: the Table service URI, e.g. <c>https://account.table.core.windows.net</c>, used with <see cref="AzureStorageCredential"/>.</summary>
    public string? AzureStorageServiceUri { get; set; }

    /// <summary>For <see cref="AzureStorageServiceUri"/>: <c>DefaultAzureCredential</c> or <c>ManagedIdentity</c> (see <see cref="AzureCredentials"/>).</summary>
    public string? AzureStorageCredential { get; set; }

    /// <summary>For <see cref="AzureStorageCredential"/>: the client id of a user-assigned managed identity (optional).</summary>
    public string? AzureStorageManagedIdentityClientId { get; set; }

    public string AdvertisedIPAddress { get; set; } = "127.0.0.1";

    public int SiloPort { get; set; } = 11111;

    public int GatewayPort { get; set; } = 30000;

    /// <summary>For <c>Localhost</c> clustering: the endpoint (ip:port) of the primary silo.</summary>
    public string? PrimarySiloEndpoint { get; set; }

    /// <summary>Section <c>Cluster:Membership</c>: how fast a failed silo is declared dead.</summary>
    public MembershipSettings Membership { get; set; } = new();

    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(ClusterId) || string.IsNullOrWhiteSpace(ServiceId))
        {
            yield return "Cluster:ClusterId and Cluster:ServiceId must be set.";
        }

        if (SiloPort is < 1 or > 65535 || GatewayPort is < 1 or > 65535 || SiloPort == GatewayPort)
        {
            yield return $"Cluster:SiloPort ({SiloPort}) and Cluster:GatewayPort ({GatewayPort}) must be different ports between 1 and 65535.";
        }

        if (!IPAddress.TryParse(AdvertisedIPAddress, out _))
        {
            yield return $"Cluster:AdvertisedIPAddress '{AdvertisedIPAddress}' is not an IP address.";
        }

        foreach (var error in Membership.Validate())
        {
            yield return error;
        }

        switch (Clustering)
        {
            case "Localhost":
                if (!string.IsNullOrWhiteSpace(PrimarySiloEndpoint) && !IPEndPoint.TryParse(PrimarySiloEndpoint, out _))
                {
                    yield return $"Cluster:PrimarySiloEndpoint '{PrimarySiloEndpoint}' is not an ip:port endpoint.";
                }

                break;
            case "AzureStorage":
                foreach (var error in AzureCredentials.Validate(
                    "Cluster:", nameof(AzureStorageConnectionString), AzureStorageConnectionString, nameof(AzureStorageServiceUri), AzureStorageServiceUri, nameof(AzureStorageCredential), AzureStorageCredential))
                {
                    yield return error;
                }

                break;
            default:
                yield return string.Create(CultureInfo.InvariantCulture, $"Cluster:Clustering '{Clustering}' is not supported; use Localhost or AzureStorage.");
                break;
        }
    }

    /// <summary>The Table service client of <c>AzureStorage</c> clustering: from the connection string, or the service URI with the named credential.</summary>
    public TableServiceClient CreateTableServiceClient() =>
        string.IsNullOrWhiteSpace(AzureStorageServiceUri)
            ? new TableServiceClient(AzureStorageConnectionString)
            : new TableServiceClient(new Uri(AzureStorageServiceUri), AzureCredentials.Create(AzureStorageCredential!, AzureStorageManagedIdentityClientId));

    /// <summary>How the silo finds the other silos, for a log line (never a key): the primary silo, or the Table endpoint and credential.</summary>
    public string DescribeClustering()
    {
        if (Clustering != "AzureStorage")
        {
            return $"{Clustering} clustering, primary silo {PrimarySilo()}";
        }

        if (!string.IsNullOrWhiteSpace(AzureStorageServiceUri))
        {
            return $"AzureStorage clustering, table endpoint {AzureStorageServiceUri.TrimEnd('/')} ({AzureStorageCredential})";
        }

        string endpoint;
        try
        {
            endpoint = AzureCredentials.WithoutQuery(new TableServiceClient(AzureStorageConnectionString).Uri);
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException or ArgumentException)
        {
            endpoint = "(malformed connection string)";
        }

        return $"AzureStorage clustering, table endpoint {endpoint} (connection string)";
    }

    /// <summary>The primary silo of <c>Localhost</c> clustering: <see cref="PrimarySiloEndpoint"/>, or this silo when it is empty.</summary>
    public IPEndPoint PrimarySilo() =>
        string.IsNullOrWhiteSpace(PrimarySiloEndpoint)
            ? new IPEndPoint(IPAddress.Parse(AdvertisedIPAddress), SiloPort)
            : IPEndPoint.Parse(PrimarySiloEndpoint);
}
