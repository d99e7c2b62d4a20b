using StreamGrains.State.Storage;

namespace StreamGrains.State.Tests.Storage;

public sealed class CheckpointStorageOptionsTests
{
    private const string ConnectionString = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";

    [Fact]
    public void The_defaults_are_valid_filesystem_storage()
    {
        var options = new CheckpointStorageOptions();

        Assert.Empty(options.Validate());
        Assert.IsType<FileSystemCheckpointStorage>(options.Create());
    }

    [Fact]
    public void An_unknown_kind_is_an_error_that_names_it()
    {
        var options = new CheckpointStorageOptions { Kind = "S3" };

        var error = Assert.Single(options.Validate());
        Assert.Contains("'S3'", error, StringComparison.Ordinal);
        var thrown = Assert.Throws<ArgumentException>(options.Create);
        Assert.Contains("'S3'", thrown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FileSystem_needs_a_path()
    {
        var options = new CheckpointStorageOptions { Path = " " };

        Assert.Contains("Path", Assert.Single(options.Validate()), StringComparison.Ordinal);
    }

    [Fact]
    public void AzureBlob_needs_a_connection_string_and_a_container_and_reports_every_problem_at_once()
    {
        var options = new CheckpointStorageOptions { Kind = "AzureBlob", MaxRetries = -1, NetworkTimeout = TimeSpan.Zero };

        var errors = options.Validate();

        Assert.Equal(4, errors.Count);
        Assert.Contains(errors, static e => e.Contains("ConnectionString", StringComparison.Ordinal));
        Assert.Contains(errors, static e => e.Contains("Container", StringComparison.Ordinal));
        Assert.Contains(errors, static e => e.Contains("MaxRetries", StringComparison.Ordinal));
        Assert.Contains(errors, static e => e.Contains("NetworkTimeout", StringComparison.Ordinal));
        var thrown = Assert.Throws<ArgumentException>(options.Create);
        Assert.All(errors, e => Assert.Contains(e, thrown.Message, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("ab")]
    [InlineData("Checkpoints")]
    [InlineData("check--points")]
    [InlineData("-checkpoints")]
    [InlineData("checkpoints-")]
    [InlineData("check_points")]
    [InlineData("check.points")]
    [InlineData("a123456789012345678901234567890123456789012345678901234567890123")]
    public void Invalid_container_names_are_rejected(string container)
    {
        var options = new CheckpointStorageOptions { Kind = "AzureBlob", ConnectionString = ConnectionString, Container = container };

        Assert.Contains($"'{container}'", Assert.Single(options.Validate()), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("123")]
    [InlineData("check-points-1")]
    [InlineData("a12345678901234567890123456789012345678901234567890123456789012")]
    public void Valid_container_names_are_accepted(string container)
    {
        var options = new CheckpointStorageOptions { Kind = "AzureBlob", ConnectionString = ConnectionString, Container = container };

        Assert.Empty(options.Validate());
    }

    [Theory]
    [InlineData("/abs")]
    [InlineData("a/../b")]
    [InlineData("a\\b")]
    public void Invalid_prefixes_are_rejected(string prefix)
    {
        var options = new CheckpointStorageOptions { Kind = "AzureBlob", ConnectionString = ConnectionString, Container = "checkpoints", Prefix = prefix };

        Assert.Contains("Prefix", Assert.Single(options.Validate()), StringComparison.Ordinal);
    }

    [Fact]
    public void Create_builds_blob_storage_for_the_container_and_prefix_without_contacting_it()
    {
        var options = new CheckpointStorageOptions { Kind = "AzureBlob", ConnectionString = ConnectionString, Container = "checkpoints", Prefix = "prod/" };

        var storage = Assert.IsType<BlobCheckpointStorage>(options.Create());

        Assert.Equal("http://127.0.0.1:10000/devstoreaccount1/checkpoints/prod", storage.Location);
    }

    [Fact]
    public void Create_with_a_malformed_connection_string_throws_ArgumentException_without_the_secret()
    {
        var options = new CheckpointStorageOptions { Kind = "AzureBlob", ConnectionString = "AccountName=x;AccountKey=c2VjcmV0LWtleQ==;Garbage", Container = "checkpoints" };

        var error = Assert.Throws<ArgumentException>(options.Create);

        Assert.Contains("malformed", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("c2VjcmV0LWtleQ", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_builds_filesystem_storage_at_the_full_path()
    {
        var options = new CheckpointStorageOptions { Path = "relative/checkpoints" };

        Assert.Equal("file://" + Path.GetFullPath("relative/checkpoints"), options.Create().Location);
    }

    [Fact]
    public void ToString_does_not_show_the_connection_string()
    {
        var options = new CheckpointStorageOptions { Kind = "AzureBlob", ConnectionString = ConnectionString, Container = "checkpoints" };

        Assert.DoesNotContain("AccountKey", options.ToString(), StringComparison.Ordinal);
    }
}
