using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Tests;

public sealed class CompletedCheckpointStoreTests
{
    [Fact]
    public async Task A_checkpoint_directory_without_manifest_is_not_a_checkpoint()
    {
        var root = Path.Combine(Path.GetTempPath(), "streamgrains-store-test", Guid.NewGuid().ToString("N"));
        try
        {
            var storage = new FileSystemCheckpointStorage(root);
            await storage.WriteAsync("job-x/chk-7/counts/0/MANIFEST-000001", new byte[] { 1 }, overwrite: false, CancellationToken.None);
            await storage.WriteAsync("job-x/chk-3/_manifest.json", ManifestJson.Serialize(new CheckpointManifest { JobId = "job-x", JobType = "T", CheckpointId = 3, MaxParallelism = 128, Operators = [] }), overwrite: false, CancellationToken.None);

            var store = await Checkpointing.CompletedCheckpointStore.LoadAsync(storage, "job-x", Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, CancellationToken.None);

            Assert.Equal(3, Assert.Single(store.Checkpoints).CheckpointId);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
