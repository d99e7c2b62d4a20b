using StreamGrains.Snapshots;
using StreamGrains.State.Savepoints;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Tests;

/// <summary>Reads the keyed state of one operator of a canonical savepoint offline, as logical entries.</summary>
internal static class SavepointReader
{
    /// <summary>Every entry of operator <paramref name="uid"/>: "state/key group/key/suffix/timestamp" → value, in hex.</summary>
    public static async Task<Dictionary<string, string>> ReadAllAsync(ICheckpointStorage storage, string directory, string uid)
    {
        var path = SnapshotLayout.ManifestPathOf(directory);
        var manifest = ManifestJson.Deserialize((await storage.ReadAsync(path, CancellationToken.None))!, path).Resolve(directory);
        Assert.Equal(SavepointFormat.Canonical, manifest.Format);
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        var scratch = Path.Combine(Path.GetTempPath(), "streamgrains-canonical-read", Guid.NewGuid().ToString("N"));
        try
        {
            foreach (var subtask in manifest.Operators.Single(o => o.Uid == uid).Subtasks)
            {
                var handle = subtask.CanonicalState ?? throw new InvalidOperationException($"subtask {subtask.SubtaskIndex} of '{uid}' has no canonical state");
                var local = Path.Combine(scratch, $"{subtask.SubtaskIndex}.state");
                await storage.DownloadFileAsync(handle.File.Path, local, new StoredObject(handle.File.Path, handle.File.Length, handle.File.Checksum), CancellationToken.None);
                foreach (var entry in CanonicalStateReader.ReadEntries(local, handle.KeyGroups))
                {
                    entries.Add($"{entry.State}/{entry.KeyGroup}/{Convert.ToHexString(entry.Key)}/{Convert.ToHexString(entry.Suffix)}/{entry.Timestamp}", Convert.ToHexString(entry.Value));
                }
            }
        }
        finally
        {
            if (Directory.Exists(scratch))
            {
                Directory.Delete(scratch, recursive: true);
            }
        }

        return entries;
    }
}
