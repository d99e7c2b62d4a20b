using Azure.Core;
using Azure.Identity;
using StreamGrains.State.Storage;

namespace StreamGrains.Silo.Tests;

public sealed class CheckpointStorageCredentialTests
{
    private static CheckpointStorageOptions Blob(string? connectionString = null, string? serviceUri = null, string? credential = null) => new()
    {
        Kind = CheckpointStorageOptions.AzureBlobKind,
        ConnectionString = connectionString,
        ServiceUri = serviceUri,
        Credential = credential,
        Container = "checkpoints",
        Prefix = "prod",
    };

    [Fact]
    public void Exactly_one_of_connection_string_and_service_uri_is_required()
    {
        Assert.Contains(Blob().Validate(), e => e.Contains("exactly one of them", StringComparison.Ordinal));
        Assert.Contains(
            Blob("UseDevelopmentStorage=true", "https://acct.blob.core.windows.net", "DefaultAzureCredential").Validate(),
            e => e.Contains("exactly one of them", StringComparison.Ordinal));
        Assert.Empty(Blob("UseDevelopmentStorage=true").Validate());
    }

    [Fact]
    public void A_service_uri_needs_a_known_credential()
    {
        Assert.Contains(Blob(serviceUri: "https://acct.blob.core.windows.net").Validate(), e => e.Contains("CheckpointStorage:ServiceUri needs CheckpointStorage:Credential", StringComparison.Ordinal));
        Assert.Contains(Blob(serviceUri: "https://acct.blob.core.windows.net", credential: "AccountKey").Validate(), e => e.Contains("CheckpointStorage:Credential 'AccountKey' is not supported", StringComparison.Ordinal));
        Assert.Contains(Blob(serviceUri: "acct.blob.core.windows.net", credential: "ManagedIdentity").Validate(), e => e.Contains("is not an absolute http(s) URI", StringComparison.Ordinal));
        Assert.Contains(Blob("UseDevelopmentStorage=true", credential: "ManagedIdentity").Validate(), e => e.Contains("goes with CheckpointStorage:ServiceUri", StringComparison.Ordinal));
        Assert.Empty(Blob(serviceUri: "https://acct.blob.core.windows.net", credential: "managedidentity").Validate());
    }

    [Fact]
    public void Credential_names_build_the_matching_credential_types()
    {
        Assert.IsType<DefaultAzureCredential>(AzureCredentials.Create("DefaultAzureCredential"));
        Assert.IsType<ManagedIdentityCredential>(AzureCredentials.Create("ManagedIdentity"));
        Assert.IsType<ManagedIdentityCredential>(AzureCredentials.Create("ManagedIdentity", "00000000-0000-0000-0000-000000000001"));
        Assert.Throws<ArgumentException>(() => AzureCredentials.Create("Password"));
    }

    [Fact]
    public void A_service_uri_with_a_credential_creates_blob_storage_at_that_account()
    {
        var options = Blob(serviceUri: "https://acct.blob.core.windows.net", credential: "ManagedIdentity");

        var storage = Assert.IsType<BlobCheckpointStorage>(options.Create());

        Assert.Equal("https://acct.blob.core.windows.net/checkpoints/prod", storage.Location);
        Assert.IsType<ManagedIdentityCredential>(options.CreateTokenCredential());
        Assert.Equal("AzureBlob https://acct.blob.core.windows.net/checkpoints/prod (ManagedIdentity)", options.Describe());
    }

    [Fact]
    public void A_token_credential_given_in_code_is_used_as_it_is()
    {
        var credential = new FixedTokenCredential();
        var options = Blob(serviceUri: "https://acct.blob.core.windows.net");
        options.TokenCredential = credential;

        Assert.Empty(options.Validate());
        Assert.Same(credential, options.CreateTokenCredential());
        Assert.IsType<BlobCheckpointStorage>(options.Create());
        options.Credential = "ManagedIdentity";
        Assert.Contains(options.Validate(), e => e.Contains("give only one", StringComparison.Ordinal));
    }

    private sealed class FixedTokenCredential : TokenCredential
    {
        public override AccessToken GetToken(TokenRequestContext requestContext, CancellationToken cancellationToken) => new("token", DateTimeOffset.UtcNow.AddHours(1));

        public override ValueTask<AccessToken> GetTokenAsync(TokenRequestContext requestContext, CancellationToken cancellationToken) => ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }
}
