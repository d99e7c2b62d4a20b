using System.Text;
using Microsoft.Extensions.Configuration;

namespace StreamGrains.Testing.Tests.Processes;

public sealed class SiloProcessSettingsTests
{
    private static readonly SiloProcessClusterOptions Options = new()
    {
        HostPath = "host.dll",
        ClusterId = "c1",
        JobAssemblies = ["a.dll", "b.dll"],
        Settings = new Dictionary<string, string> { ["StreamGrains:BlockCacheMb"] = "32", ["Cluster:ServiceId"] = "svc" },
    };

    [Fact]
    public void The_settings_file_reads_back_as_the_same_configuration()
    {
        var silo = new SiloProcessLayout(1, 41001, 41002, "/tmp/kit/silo-1");
        var settings = SiloProcessSettings.For(Options, silo, primarySiloPort: 40001, checkpointDirectory: "/tmp/kit/checkpoints");

        var configuration = new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(SiloProcessSettings.ToJson(settings)))).Build();

        foreach (var (key, value) in settings)
        {
            Assert.Equal(value, configuration[key]);
        }

        Assert.Equal("127.0.0.1:40001", configuration["Cluster:PrimarySiloEndpoint"]);
        Assert.Equal("41001", configuration["Cluster:SiloPort"]);
        Assert.Equal("svc", configuration["Cluster:ServiceId"]);
        Assert.Equal("FileSystem", configuration["StreamGrains:CheckpointStorage:Kind"]);
        Assert.Equal(Path.Combine("/tmp/kit/silo-1", "state"), configuration["StreamGrains:StateDirectory"]);
        Assert.Equal([Path.GetFullPath("a.dll"), Path.GetFullPath("b.dll")], configuration.GetSection("StreamGrains:JobAssemblies").Get<string[]>()!);
    }

    [Fact]
    public void Azure_settings_name_the_table_and_blob_accounts()
    {
        var options = Options with { Clustering = SiloProcessClustering.AzureStorage, AzureStorageConnectionString = "tables", BlobConnectionString = "blobs", BlobContainer = "cp" };

        var settings = SiloProcessSettings.For(options, new SiloProcessLayout(0, 1, 2, "/tmp/kit/silo-0"), 1, "/unused");

        Assert.Equal("AzureStorage", settings["Cluster:Clustering"]);
        Assert.Equal("tables", settings["Cluster:AzureStorageConnectionString"]);
        Assert.False(settings.ContainsKey("Cluster:PrimarySiloEndpoint"));
        Assert.Equal("AzureBlob", settings["StreamGrains:CheckpointStorage:Kind"]);
        Assert.Equal("blobs", settings["StreamGrains:CheckpointStorage:ConnectionString"]);
        Assert.Equal("cp", settings["StreamGrains:CheckpointStorage:Container"]);
    }

    [Fact]
    public void A_key_that_is_both_a_value_and_a_section_is_rejected()
    {
        var settings = new Dictionary<string, string> { ["A"] = "1", ["A:B"] = "2" };

        Assert.Throws<ArgumentException>(() => SiloProcessSettings.ToJson(settings));
    }
}
