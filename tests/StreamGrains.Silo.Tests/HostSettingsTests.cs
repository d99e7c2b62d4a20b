using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace StreamGrains.Silo.Tests;

public sealed class HostSettingsTests
{
    private static HostSettings Read(Dictionary<string, string?> values, out List<string> errors)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        errors = [];
        return HostSettings.Read(configuration, errors);
    }

    [Fact]
    public void Every_setting_of_the_StreamGrains_section_reaches_the_runtime_options()
    {
        var settings = Read(
            new()
            {
                ["StreamGrains:StateDirectory"] = "/tmp/sg-state",
                ["StreamGrains:ColumnFamilyWriteBufferMb"] = "32",
                ["StreamGrains:DeleteLocalStateOnStop"] = "false",
                ["StreamGrains:CheckpointStorage:Kind"] = "FileSystem",
                ["StreamGrains:CheckpointStorage:Path"] = "/tmp/sg-checkpoints",
                ["StreamGrains:CheckpointStorage:LinkOnRestore"] = "false",
                ["StreamGrains:JobAssemblies:0"] = "jobs.dll",
            },
            out var errors);

        Assert.Empty(errors);
        Assert.Equal("/tmp/sg-state", settings.Runtime.StateDirectory);
        Assert.Equal(32, settings.Runtime.ColumnFamilyWriteBufferMb);
        Assert.False(settings.Runtime.DeleteLocalStateOnStop);
        Assert.Equal("/tmp/sg-checkpoints", settings.Runtime.CheckpointStorage.Path);
        Assert.False(settings.Runtime.CheckpointStorage.LinkOnRestore);
        Assert.Equal(["jobs.dll"], settings.JobAssemblyPaths);
    }

    [Fact]
    public void The_silo_binds_the_same_options_as_the_host_validates()
    {
        var settings = Read(new() { ["StreamGrains:CheckpointStorage:Path"] = "relative-checkpoints", ["StreamGrains:StateDirectory"] = "relative-state" }, out var errors);
        var silo = new Grains.StreamGrainsOptions();
        HostSettings.BindRuntime(settings.RuntimeSection, silo);

        Assert.Empty(errors);
        Assert.Equal(Path.GetFullPath("relative-checkpoints"), silo.CheckpointStorage.Path);
        Assert.Equal(Path.GetFullPath("relative-state"), silo.StateDirectory);
        Assert.Equal(settings.Runtime.CheckpointStorage.Path, silo.CheckpointStorage.Path);
    }

    [Fact]
    public void Unknown_keys_and_unconvertible_values_are_errors_that_name_the_setting()
    {
        Read(
            new()
            {
                ["StreamGrains:CheckpointStorage:Knd"] = "AzureBlob",
                ["StreamGrains:BlockCacheMb"] = "lots",
                ["Cluster:GatwayPort"] = "30001",
            },
            out var errors);

        Assert.Contains("StreamGrains:CheckpointStorage:Knd is not a known setting.", errors);
        Assert.Contains("Cluster:GatwayPort is not a known setting.", errors);
        Assert.Contains(errors, e => e.Contains("StreamGrains:BlockCacheMb", StringComparison.Ordinal));
    }

    [Fact]
    public void Membership_settings_reach_the_silos_orleans_options_and_the_startup_summary()
    {
        var settings = Read(
            new()
            {
                ["Cluster:Membership:ProbeTimeout"] = "00:00:02",
                ["Cluster:Membership:MissedProbesLimit"] = "2",
                ["Cluster:Membership:VotesForDeathDeclaration"] = "1",
            },
            out var errors);
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.UseOrleans(silo => SiloHostBuilder.Configure(silo, settings, []));
        using var host = builder.Build();
        var orleans = host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<Orleans.Configuration.ClusterMembershipOptions>>().Value;
        var summary = string.Join('\n', SiloHostBuilder.StartupSummary(settings));

        Assert.Empty(errors);
        Assert.Equal((TimeSpan.FromSeconds(2), 2, 1), (orleans.ProbeTimeout, orleans.NumMissedProbesLimit, orleans.NumVotesForDeathDeclaration));
        Assert.Contains("failure detection: probe every 2 s, suspect after 2 missed, dead on 1 votes, a silo refusing connections is declared dead at once", summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Unset_membership_settings_keep_orleans_defaults_and_bad_ones_are_errors()
    {
        var defaults = Read([], out var none);
        Read(new() { ["Cluster:Membership:ProbeTimeout"] = "00:00:00.010", ["Cluster:Membership:MissedProbesLimit"] = "0", ["Cluster:Membership:Probes"] = "3" }, out var errors);
        var orleans = new Orleans.Configuration.ClusterMembershipOptions();
        defaults.Cluster.Membership.ApplyTo(orleans);

        Assert.Empty(none);
        Assert.Equal((TimeSpan.FromSeconds(5), 3, 2), (orleans.ProbeTimeout, orleans.NumMissedProbesLimit, orleans.NumVotesForDeathDeclaration));
        Assert.Contains(errors, e => e.StartsWith("Cluster:Membership:ProbeTimeout must be between", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Cluster:Membership:MissedProbesLimit must be between 1 and 100", StringComparison.Ordinal));
        Assert.Contains("Cluster:Membership:Probes is not a known setting.", errors);
    }

    [Fact]
    public void An_unknown_checkpoint_storage_kind_is_an_error_naming_the_setting()
    {
        Read(new() { ["StreamGrains:CheckpointStorage:Kind"] = "Tape" }, out var errors);

        Assert.Contains("StreamGrains:CheckpointStorage:Kind 'Tape' is not supported; use FileSystem or AzureBlob.", errors);
    }

    [Fact]
    public void The_startup_summary_names_storage_state_cluster_and_ports()
    {
        var settings = Read(
            new()
            {
                ["Cluster:ClusterId"] = "prod",
                ["Cluster:SiloPort"] = "11112",
                ["Cluster:GatewayPort"] = "30002",
                ["Cluster:PrimarySiloEndpoint"] = "127.0.0.1:11111",
                ["StreamGrains:StateDirectory"] = "/data/state",
                ["StreamGrains:CheckpointStorage:Path"] = "/mnt/shared/checkpoints",
            },
            out var errors);

        var summary = string.Join('\n', SiloHostBuilder.StartupSummary(settings));

        Assert.Empty(errors);
        Assert.Contains("cluster 'prod'", summary, StringComparison.Ordinal);
        Assert.Contains("silo port 11112, gateway port 30002", summary, StringComparison.Ordinal);
        Assert.Contains("Localhost clustering, primary silo 127.0.0.1:11111", summary, StringComparison.Ordinal);
        Assert.Contains("Checkpoints, savepoints and job records: FileSystem /mnt/shared/checkpoints", summary, StringComparison.Ordinal);
        Assert.Contains("Local state: /data/state", summary, StringComparison.Ordinal);
    }

    [Fact]
    public void The_startup_summary_shows_blob_and_table_endpoints_but_never_the_account_key()
    {
        const string key = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWJlLXByaW50ZWQ=";
        var connectionString = $"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=core.windows.net";
        var settings = Read(
            new()
            {
                ["Cluster:Clustering"] = "AzureStorage",
                ["Cluster:AzureStorageConnectionString"] = connectionString,
                ["StreamGrains:CheckpointStorage:Kind"] = "AzureBlob",
                ["StreamGrains:CheckpointStorage:ConnectionString"] = connectionString,
                ["StreamGrains:CheckpointStorage:Container"] = "checkpoints",
                ["StreamGrains:CheckpointStorage:Prefix"] = "prod/",
            },
            out var errors);

        var summary = string.Join('\n', SiloHostBuilder.StartupSummary(settings));

        Assert.Empty(errors);
        Assert.Contains("AzureBlob https://acct.blob.core.windows.net/checkpoints/prod (connection string)", summary, StringComparison.Ordinal);
        Assert.Contains("table endpoint https://acct.table.core.windows.net", summary, StringComparison.Ordinal);
        Assert.DoesNotContain(key, summary, StringComparison.Ordinal);
        Assert.DoesNotContain("AccountKey", summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Table_clustering_accepts_a_service_uri_with_a_credential_and_validates_the_pair()
    {
        var good = Read(
            new()
            {
                ["Cluster:Clustering"] = "AzureStorage",
                ["Cluster:AzureStorageServiceUri"] = "https://acct.table.core.windows.net",
                ["Cluster:AzureStorageCredential"] = "ManagedIdentity",
                ["Cluster:AzureStorageManagedIdentityClientId"] = "00000000-0000-0000-0000-000000000001",
            },
            out var goodErrors);
        Read(
            new()
            {
                ["Cluster:Clustering"] = "AzureStorage",
                ["Cluster:AzureStorageConnectionString"] = "UseDevelopmentStorage=true",
                ["Cluster:AzureStorageServiceUri"] = "https://acct.table.core.windows.net",
            },
            out var bothErrors);
        Read(
            new()
            {
                ["Cluster:Clustering"] = "AzureStorage",
                ["Cluster:AzureStorageServiceUri"] = "https://acct.table.core.windows.net",
                ["Cluster:AzureStorageCredential"] = "Password",
            },
            out var unknownErrors);

        Assert.Empty(goodErrors);
        Assert.Equal(new Uri("https://acct.table.core.windows.net"), good.Cluster.CreateTableServiceClient().Uri);
        Assert.Contains("AzureStorage clustering, table endpoint https://acct.table.core.windows.net (ManagedIdentity)", good.Cluster.DescribeClustering(), StringComparison.Ordinal);
        Assert.Contains(bothErrors, e => e.Contains("exactly one of them", StringComparison.Ordinal) && e.Contains("Cluster:AzureStorageConnectionString", StringComparison.Ordinal));
        Assert.Contains(unknownErrors, e => e.Contains("Cluster:AzureStorageCredential 'Password' is not supported", StringComparison.Ordinal));
    }
}
