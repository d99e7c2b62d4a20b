namespace StreamGrains.Testing;

/// <summary>How the silos of a <see cref="SiloProcessCluster"/> find each other.</summary>
public enum SiloProcessClustering
{
    /// <summary>Development clustering: the first silo is the primary and holds the membership table in memory.</summary>
    Localhost,

    /// <summary>Membership table in Azure Table Storage (or Azurite), given by <see cref="SiloProcessClusterOptions.AzureStorageConnectionString"/>.</summary>
    AzureStorage,
}

/// <summary>Settings of a <see cref="SiloProcessCluster"/>.</summary>
public sealed record SiloProcessClusterOptions
{
    /// <summary>
    /// The silo host to start: the built <c>StreamGrains.Silo.dll</c> (started with <c>dotnet</c>) or an executable
    /// (a published single-file or apphost binary). Each silo runs it with the command <c>run --config {file}</c>.
    /// </summary>
    public required string HostPath { get; init; }

    /// <summary>The <c>dotnet</c> executable used for a <c>.dll</c> host. Default: <c>dotnet</c> on PATH.</summary>
    public string DotnetPath { get; init; } = "dotnet";

    /// <summary>Cluster id of the silos (and the client). Default: unique per cluster, so clusters never meet.</summary>
    public string ClusterId { get; init; } = "kit-" + Guid.NewGuid().ToString("N")[..12];

    /// <summary>Service id of the silos (and the client). Default "streamgrains".</summary>
    public string ServiceId { get; init; } = "streamgrains";

    /// <summary>Clustering provider. Default <see cref="SiloProcessClustering.Localhost"/>.</summary>
    public SiloProcessClustering Clustering { get; init; } = SiloProcessClustering.Localhost;

    /// <summary>Connection string of the Table Storage account for <see cref="SiloProcessClustering.AzureStorage"/>.</summary>
    public string? AzureStorageConnectionString { get; init; }

    /// <summary>
    /// Connection string of the Blob Storage account that keeps checkpoints; null keeps them on the filesystem under
    /// <see cref="CheckpointDirectory"/>.
    /// </summary>
    public string? BlobConnectionString { get; init; }

    /// <summary>Blob container of the checkpoints when <see cref="BlobConnectionString"/> is set. Default "checkpoints".</summary>
    public string BlobContainer { get; init; } = "checkpoints";

    /// <summary>
    /// The checkpoint directory shared by every silo when checkpoints are on the filesystem. Default:
    /// <c>{RootDirectory}/checkpoints</c>.
    /// </summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>
    /// Directory for the silos' state directories, generated settings files and logs. Default: a new directory under
    /// the temp folder, deleted on dispose.
    /// </summary>
    public string? RootDirectory { get; init; }

    /// <summary>Paths of assemblies with job definitions, passed to every silo as <c>StreamGrains:JobAssemblies</c>.</summary>
    public IReadOnlyList<string> JobAssemblies { get; init; } = [];

    /// <summary>
    /// More settings for every silo, by configuration key (<c>StreamGrains:BlockCacheMb</c>,
    /// <c>Logging:LogLevel:Orleans</c>); they are written into the generated settings file after the kit's own.
    /// </summary>
    public IReadOnlyDictionary<string, string> Settings { get; init; } = new Dictionary<string, string>();

    /// <summary>More environment variables for every silo process (for example <c>STREAMGRAINS_</c> settings).</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>How long starting silos may take until they are all Active in the membership. Default 2 minutes.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How long a graceful stop (SIGTERM) may take before the silo is killed. Default 1 minute.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Lines of each silo's output kept in memory (all of it also goes to its log file). Default 300.</summary>
    public int LogTailLines { get; init; } = 300;

    /// <summary>Whether dispose keeps <see cref="RootDirectory"/> (state, settings and logs). Default false.</summary>
    public bool KeepRootDirectory { get; init; }
}
