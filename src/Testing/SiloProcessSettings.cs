using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace StreamGrains.Testing;

/// <summary>The ports and directories of one silo process of a <see cref="SiloProcessCluster"/>.</summary>
/// <param name="Index">Index of the silo in its cluster (0 is the first, the primary with Localhost clustering).</param>
/// <param name="SiloPort">The silo-to-silo port.</param>
/// <param name="GatewayPort">The client gateway port.</param>
/// <param name="Directory">The silo's own directory (state, settings file, log).</param>
public sealed record SiloProcessLayout(int Index, int SiloPort, int GatewayPort, string Directory)
{
    /// <summary>The silo's local state directory (<c>StreamGrains:StateDirectory</c>).</summary>
    public string StateDirectory => Path.Combine(Directory, "state");

    /// <summary>The generated settings file passed with <c>--config</c>.</summary>
    public string SettingsFile => Path.Combine(Directory, "silo.json");

    /// <summary>The file that receives the silo's stdout and stderr.</summary>
    public string LogFile => Path.Combine(Directory, "silo.log");
}

/// <summary>Builds the settings of one silo process: configuration keys and the JSON file the host reads with <c>--config</c>.</summary>
public static class SiloProcessSettings
{
    /// <summary>
    /// The configuration of silo <paramref name="silo"/>: cluster, ports, state directory, checkpoint storage, job
    /// assemblies, then <see cref="SiloProcessClusterOptions.Settings"/> (which win), by configuration key.
    /// </summary>
    /// <param name="options">The cluster's settings.</param>
    /// <param name="silo">This silo's ports and directory.</param>
    /// <param name="primarySiloPort">Silo port of the primary silo (Localhost clustering).</param>
    /// <param name="checkpointDirectory">The shared checkpoint directory (filesystem storage).</param>
    public static IReadOnlyDictionary<string, string> For(SiloProcessClusterOptions options, SiloProcessLayout silo, int primarySiloPort, string checkpointDirectory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(silo);
        var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["Cluster:ClusterId"] = options.ClusterId,
            ["Cluster:ServiceId"] = options.ServiceId,
            ["Cluster:AdvertisedIPAddress"] = "127.0.0.1",
            ["Cluster:SiloPort"] = silo.SiloPort.ToString(CultureInfo.InvariantCulture),
            ["Cluster:GatewayPort"] = silo.GatewayPort.ToString(CultureInfo.InvariantCulture),
            ["StreamGrains:StateDirectory"] = silo.StateDirectory,
        };
        if (options.Clustering == SiloProcessClustering.AzureStorage)
        {
            settings["Cluster:Clustering"] = "AzureStorage";
            settings["Cluster:AzureStorageConnectionString"] = options.AzureStorageConnectionString
                ?? throw new ArgumentException("AzureStorage clustering needs AzureStorageConnectionString.", nameof(options));
        }
        else
        {
            settings["Cluster:Clustering"] = "Localhost";
            settings["Cluster:PrimarySiloEndpoint"] = "127.0.0.1:" + primarySiloPort.ToString(CultureInfo.InvariantCulture);
        }

        if (options.BlobConnectionString is { } blob)
        {
            settings["StreamGrains:CheckpointStorage:Kind"] = "AzureBlob";
            settings["StreamGrains:CheckpointStorage:ConnectionString"] = blob;
            settings["StreamGrains:CheckpointStorage:Container"] = options.BlobContainer;
        }
        else
        {
            settings["StreamGrains:CheckpointStorage:Kind"] = "FileSystem";
            settings["StreamGrains:CheckpointStorage:Path"] = checkpointDirectory;
        }

        for (var i = 0; i < options.JobAssemblies.Count; i++)
        {
            settings["StreamGrains:JobAssemblies:" + i.ToString(CultureInfo.InvariantCulture)] = Path.GetFullPath(options.JobAssemblies[i]);
        }

        foreach (var (key, value) in options.Settings)
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>
    /// The JSON document of <paramref name="settings"/>: each key's <c>:</c>-separated parts become nested objects
    /// (<c>JobAssemblies:0</c> becomes <c>"JobAssemblies": { "0": … }</c>, which .NET configuration reads as an array).
    /// </summary>
    /// <exception cref="ArgumentException">When a key is both a value and a section (<c>A</c> and <c>A:B</c>).</exception>
    public static string ToJson(IReadOnlyDictionary<string, string> settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var root = new JsonObject();
        foreach (var (key, value) in settings.OrderBy(static s => s.Key, StringComparer.Ordinal))
        {
            var parts = key.Split(':');
            var node = root;
            for (var i = 0; i < parts.Length - 1; i++)
            {
                var child = node[parts[i]];
                if (child is null)
                {
                    child = new JsonObject();
                    node[parts[i]] = child;
                }

                node = child as JsonObject ?? throw new ArgumentException($"Setting '{key}' is below '{string.Join(':', parts[..(i + 1)])}', which has a value.", nameof(settings));
            }

            if (node[parts[^1]] is JsonObject)
            {
                throw new ArgumentException($"Setting '{key}' has a value and settings below it.", nameof(settings));
            }

            node[parts[^1]] = value;
        }

        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
