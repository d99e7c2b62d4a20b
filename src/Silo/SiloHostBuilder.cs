using System.Net;
using System.Reflection;
using Orleans.Configuration;
using Orleans.Serialization;
using StreamGrains.Grains;

namespace StreamGrains.Silo;

/// <summary>Configures an Orleans silo from the <c>run</c> host's <see cref="HostSettings"/>.</summary>
internal static class SiloHostBuilder
{
    /// <summary>
    /// Sets the cluster and service ids, the endpoints, the clustering, the serializers of the job assemblies and the
    /// StreamGrains runtime, whose options are the whole section <c>StreamGrains</c> (see <see cref="HostSettings.BindRuntime"/>).
    /// </summary>
    public static void Configure(ISiloBuilder silo, HostSettings settings, IReadOnlyList<Assembly> jobAssemblies)
    {
        var cluster = settings.Cluster;
        silo.Configure<ClusterOptions>(o =>
        {
            o.ClusterId = cluster.ClusterId;
            o.ServiceId = cluster.ServiceId;
        });
        silo.Configure<ClusterMembershipOptions>(cluster.Membership.ApplyTo);
        silo.ConfigureEndpoints(IPAddress.Parse(cluster.AdvertisedIPAddress), cluster.SiloPort, cluster.GatewayPort, listenOnAnyHostAddress: ListensOnAllInterfaces(cluster));
        if (cluster.Clustering == "AzureStorage")
        {
            silo.UseAzureStorageClustering(o => o.TableServiceClient = cluster.CreateTableServiceClient());
        }
        else
        {
            silo.UseDevelopmentClustering(cluster.PrimarySilo());
        }

        silo.Services.AddSerializer(serializer =>
        {
            foreach (var assembly in jobAssemblies)
            {
                serializer.AddAssembly(assembly);
            }
        });
        silo.AddStreamGrains(o => HostSettings.BindRuntime(settings.RuntimeSection, o));
    }

    /// <summary>Whether the silo listens on every interface: when it advertises an address other than 127.0.0.1.</summary>
    public static bool ListensOnAllInterfaces(ClusterSettings cluster) => cluster.AdvertisedIPAddress != "127.0.0.1";

    /// <summary>The lines the host prints at start: ids, endpoints, clustering, where checkpoints and local state go. No secrets.</summary>
    public static IReadOnlyList<string> StartupSummary(HostSettings settings)
    {
        var cluster = settings.Cluster;
        var listen = ListensOnAllInterfaces(cluster) ? " (listening on all interfaces)" : string.Empty;
        return
        [
            $"StreamGrains silo of cluster '{cluster.ClusterId}' (service '{cluster.ServiceId}'): silo port {cluster.SiloPort}, gateway port {cluster.GatewayPort}, advertised at {cluster.AdvertisedIPAddress}{listen}",
            $"Clustering: {cluster.DescribeClustering()}; failure detection: {cluster.Membership.Describe()}{(settings.Runtime.DeclareCrashedSilosDead ? ", a silo refusing connections is declared dead at once" : string.Empty)}",
            $"Checkpoints, savepoints and job records: {settings.Runtime.CheckpointStorage.Describe()}",
            $"Local state: {settings.Runtime.StateDirectory}",
        ];
    }
}
