using System.Globalization;
using System.Net;

namespace StreamGrains.Silo;

/// <summary>How the silo joins its cluster (section <c>Cluster</c> of appsettings.json).</summary>
internal sealed class ClusterSettings
{
    public const string SectionName = "Cluster";

    public string ClusterId { get; set; } = "streamgrains";

    public string ServiceId { get; set; } = "streamgrains";

    /// <summary><c>Localhost</c> (development: silos on one machine, the first is primary) or <c>AzureStorage</c> (membership table in Azure Table Storage).</summary>
    public string Clustering { get; set; } = "Localhost";

    public string? AzureStorageConnectionString { get; set; }

    public string AdvertisedIPAddress { get; set; } = "127.0.0.1";

    public int SiloPort { get; set; } = 11111;

    public int GatewayPort { get; set; } = 30000;

    /// <summary>For <c>Localhost</c> clustering: the endpoint (ip:port) of the primary silo.</summary>
    public string? PrimarySiloEndpoint { get; set; }

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

        switch (Clustering)
        {
            case "Localhost":
                if (!string.IsNullOrWhiteSpace(PrimarySiloEndpoint) && !IPEndPoint.TryParse(PrimarySiloEndpoint, out _))
                {
                    yield return $"Cluster:PrimarySiloEndpoint '{PrimarySiloEndpoint}' is not an ip:port endpoint.";
                }

                break;
            case "AzureStorage":
                if (string.IsNullOrWhiteSpace(AzureStorageConnectionString))
                {
                    yield return "Cluster:Clustering is AzureStorage but Cluster:AzureStorageConnectionString is empty.";
                }

                break;
            default:
                yield return string.Create(CultureInfo.InvariantCulture, $"Cluster:Clustering '{Clustering}' is not supported; use Localhost or AzureStorage.");
                break;
        }
    }
}
