using System.Net;
using Azure.Data.Tables;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using Orleans.Serialization;
using StreamGrains.Grains;

namespace StreamGrains.Silo;

/// <summary>The <c>run</c> command: a long-running silo configured from appsettings.json.</summary>
internal static class RunCommand
{
    public static async Task<int> RunAsync(FileInfo? config, CancellationToken cancellationToken)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        if (config is not null)
        {
            if (!config.Exists)
            {
                await Console.Error.WriteLineAsync($"Settings file '{config.FullName}' does not exist.");
                return 2;
            }

            builder.Configuration.AddJsonFile(config.FullName, optional: false);
        }

        builder.Configuration.AddEnvironmentVariables("STREAMGRAINS_");
        var cluster = builder.Configuration.GetSection(ClusterSettings.SectionName).Get<ClusterSettings>() ?? new ClusterSettings();
        var runtime = builder.Configuration.GetSection(StreamGrainsOptions.SectionName).Get<StreamGrainsOptions>() ?? new StreamGrainsOptions();
        var jobAssemblyPaths = builder.Configuration.GetSection("StreamGrains:JobAssemblies").Get<string[]>() ?? [];
        var errors = cluster.Validate().Concat(runtime.Validate()).ToList();
        var jobAssemblies = JobAssemblies.Load(jobAssemblyPaths, errors);
        ParentProcessWatch.AddIfRequested(builder.Services, errors);
        if (errors.Count > 0)
        {
            await Console.Error.WriteLineAsync("Invalid settings:" + Environment.NewLine + string.Join(Environment.NewLine, errors.Select(static e => "  - " + e)));
            return 2;
        }

        builder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = cluster.ClusterId;
                o.ServiceId = cluster.ServiceId;
            });
            silo.ConfigureEndpoints(IPAddress.Parse(cluster.AdvertisedIPAddress), cluster.SiloPort, cluster.GatewayPort, listenOnAnyHostAddress: cluster.AdvertisedIPAddress != "127.0.0.1");
            if (cluster.Clustering == "AzureStorage")
            {
                silo.UseAzureStorageClustering(o => o.TableServiceClient = new TableServiceClient(cluster.AzureStorageConnectionString));
            }
            else
            {
                var primary = string.IsNullOrWhiteSpace(cluster.PrimarySiloEndpoint)
                    ? new IPEndPoint(IPAddress.Parse(cluster.AdvertisedIPAddress), cluster.SiloPort)
                    : IPEndPoint.Parse(cluster.PrimarySiloEndpoint);
                silo.UseDevelopmentClustering(primary);
            }

            silo.Services.AddSerializer(serializer =>
            {
                foreach (var assembly in jobAssemblies)
                {
                    serializer.AddAssembly(assembly);
                }
            });
            silo.AddStreamGrains(o =>
            {
                o.StateDirectory = Path.GetFullPath(runtime.StateDirectory);
                o.BlockCacheMb = runtime.BlockCacheMb;
                o.WriteBufferMb = runtime.WriteBufferMb;
                o.ColumnFamilyWriteBufferMb = runtime.ColumnFamilyWriteBufferMb;
                o.StateCacheEntries = runtime.StateCacheEntries;
                o.DeleteLocalStateOnStop = runtime.DeleteLocalStateOnStop;
                o.CheckpointStorage = runtime.CheckpointStorage;
            });
        });

        using var host = builder.Build();
        foreach (var assembly in jobAssemblies)
        {
            Console.WriteLine($"Job assembly {assembly.GetName().Name} from {assembly.Location}");
        }

        Console.WriteLine($"StreamGrains silo '{cluster.ClusterId}' on {cluster.AdvertisedIPAddress}:{cluster.SiloPort} (gateway {cluster.GatewayPort}), {cluster.Clustering} clustering, state in {Path.GetFullPath(runtime.StateDirectory)}. Ctrl+C stops it.");
        await host.RunAsync(cancellationToken);
        return 0;
    }
}
