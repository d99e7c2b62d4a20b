using System.Reflection;
using Microsoft.Extensions.Configuration;
using StreamGrains.Grains;
using StreamGrains.State.Storage;

namespace StreamGrains.Silo;

/// <summary>
/// The settings of the <c>run</c> host: section <c>Cluster</c> bound to <see cref="ClusterSettings"/>, the whole section
/// <c>StreamGrains</c> bound to <see cref="StreamGrainsOptions"/> (so that every option, present or added later, reaches
/// the runtime), and <c>StreamGrains:JobAssemblies</c>.
/// </summary>
internal sealed class HostSettings
{
    /// <summary>The key, inside section <c>StreamGrains</c>, of the job assemblies' paths (read by the host, not an option of the runtime).</summary>
    public const string JobAssembliesKey = "JobAssemblies";

    private HostSettings(ClusterSettings cluster, StreamGrainsOptions runtime, IConfigurationSection runtimeSection, IReadOnlyList<string> jobAssemblyPaths)
    {
        Cluster = cluster;
        Runtime = runtime;
        RuntimeSection = runtimeSection;
        JobAssemblyPaths = jobAssemblyPaths;
    }

    /// <summary>Section <c>Cluster</c>.</summary>
    public ClusterSettings Cluster { get; }

    /// <summary>Section <c>StreamGrains</c> as the runtime will see it (paths made absolute).</summary>
    public StreamGrainsOptions Runtime { get; }

    /// <summary>Section <c>StreamGrains</c> itself, which the silo binds its <see cref="StreamGrainsOptions"/> to.</summary>
    public IConfigurationSection RuntimeSection { get; }

    /// <summary>Paths of the assemblies with job definitions.</summary>
    public IReadOnlyList<string> JobAssemblyPaths { get; }

    /// <summary>
    /// Reads and validates the settings, adding one message per problem to <paramref name="errors"/>: a value that
    /// cannot be converted, a key that names no setting (a typo would otherwise be silently ignored), and every
    /// problem the settings' own validation finds.
    /// </summary>
    public static HostSettings Read(IConfiguration configuration, List<string> errors)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var clusterSection = configuration.GetSection(ClusterSettings.SectionName);
        var runtimeSection = configuration.GetSection(StreamGrainsOptions.SectionName);
        errors.AddRange(UnknownKeys(clusterSection, typeof(ClusterSettings), []));
        errors.AddRange(UnknownKeys(runtimeSection, typeof(StreamGrainsOptions), [JobAssembliesKey]));

        var cluster = new ClusterSettings();
        var runtime = new StreamGrainsOptions();
        try
        {
            clusterSection.Bind(cluster);
        }
        catch (InvalidOperationException ex)
        {
            errors.Add(ex.Message);
        }

        try
        {
            BindRuntime(runtimeSection, runtime);
        }
        catch (InvalidOperationException ex)
        {
            errors.Add(ex.Message);
        }

        var paths = runtimeSection.GetSection(JobAssembliesKey).Get<string[]>() ?? [];
        var settings = new HostSettings(cluster, runtime, runtimeSection, paths);
        errors.AddRange(cluster.Validate());
        errors.AddRange(runtime.Validate());
        return settings;
    }

    /// <summary>
    /// Binds <paramref name="section"/> to <paramref name="options"/> and makes the local paths in it absolute (relative
    /// ones are relative to the working directory). The host calls it both for what it validates and prints and for the
    /// options the silo runs with, so the two cannot differ.
    /// </summary>
    /// <exception cref="InvalidOperationException">When a value cannot be converted; the message names the setting.</exception>
    public static void BindRuntime(IConfiguration section, StreamGrainsOptions options)
    {
        section.Bind(options);
        if (!string.IsNullOrWhiteSpace(options.StateDirectory))
        {
            options.StateDirectory = Path.GetFullPath(options.StateDirectory);
        }

        if (options.CheckpointStorage.Kind == CheckpointStorageOptions.FileSystemKind && !string.IsNullOrWhiteSpace(options.CheckpointStorage.Path))
        {
            options.CheckpointStorage.Path = Path.GetFullPath(options.CheckpointStorage.Path);
        }
    }

    /// <summary>One message for each key under <paramref name="section"/> that names no settable property of <paramref name="type"/> (recursively).</summary>
    internal static IEnumerable<string> UnknownKeys(IConfigurationSection section, Type type, IReadOnlyCollection<string> ignored)
    {
        foreach (var child in section.GetChildren())
        {
            if (ignored.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            var property = type.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null || !property.CanWrite)
            {
                yield return $"{child.Path} is not a known setting.";
                continue;
            }

            if (IsSettingsObject(property.PropertyType))
            {
                foreach (var error in UnknownKeys(child, property.PropertyType, []))
                {
                    yield return error;
                }
            }
        }
    }

    /// <summary>Whether <paramref name="type"/> is one of the settings classes whose keys are checked too (not a value, string or collection).</summary>
    private static bool IsSettingsObject(Type type) =>
        type.IsClass && type != typeof(string) && !type.IsAbstract && type.Namespace?.StartsWith("StreamGrains", StringComparison.Ordinal) == true;
}
