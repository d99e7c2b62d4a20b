using StreamGrains.Snapshots;
using StreamGrains.State.Snapshots;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Checkpointing;

/// <summary>
/// Turns the state of a completed snapshot into a self-contained, relocatable savepoint directory: every file is
/// copied into the directory inside checkpoint storage (a server-side copy on Blob Storage, a hard link on a
/// filesystem — no byte passes through the silo), and the manifest, written last, names them relative to the directory.
/// </summary>
internal static class SavepointBuilder
{
    private const int ParallelCopies = 16;

    /// <summary>The default directory of a savepoint.</summary>
    public static string DefaultDirectory(string jobId, long checkpointId) =>
        FormattableString.Invariant($"savepoints/{jobId}/sp-{checkpointId}-{Guid.NewGuid().ToString("N")[..8]}");

    /// <summary>The savepoint directory's relative name for a file stored at <paramref name="storagePath"/>.</summary>
    public static string RelativeName(string storagePath) => "files/" + storagePath;

    /// <summary>
    /// Copies every file of the native snapshot <paramref name="manifest"/> into <paramref name="directory"/> and writes
    /// the savepoint manifest there (last, so a directory without it is not a savepoint). Reports files copied.
    /// </summary>
    public static async Task<CheckpointManifest> BuildNativeAsync(ICheckpointStorage storage, CheckpointManifest manifest, string directory, IProgress<int> copied, CancellationToken cancellationToken)
    {
        var files = manifest.Files().Select(static f => f.Path).Distinct(StringComparer.Ordinal).ToArray();
        var done = 0;
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = ParallelCopies, CancellationToken = cancellationToken }, async (path, ct) =>
        {
            await storage.CopyAsync(path, $"{directory}/{RelativeName(path)}", ct);
            copied.Report(Interlocked.Increment(ref done));
        });
        var savepoint = manifest.MapFilePaths(RelativeName) with { Kind = SnapshotKind.Savepoint, Format = SavepointFormat.Native };
        await storage.WriteAsync($"{directory}/{SnapshotLayout.ManifestFileName}", ManifestJson.Serialize(savepoint), overwrite: false, cancellationToken);
        return savepoint;
    }

    /// <summary>Writes the manifest of a canonical savepoint whose state files subtasks wrote into <paramref name="directory"/>.</summary>
    public static async Task<CheckpointManifest> WriteCanonicalAsync(ICheckpointStorage storage, CheckpointManifest manifest, string directory, CancellationToken cancellationToken)
    {
        var prefix = directory + "/";
        var savepoint = manifest.MapFilePaths(path => path.StartsWith(prefix, StringComparison.Ordinal)
            ? path[prefix.Length..]
            : throw new InvalidOperationException($"Canonical state file '{path}' is not inside the savepoint directory '{directory}'.")) with
        {
            Kind = SnapshotKind.Savepoint,
            Format = SavepointFormat.Canonical,
        };
        await storage.WriteAsync($"{directory}/{SnapshotLayout.ManifestFileName}", ManifestJson.Serialize(savepoint), overwrite: false, cancellationToken);
        return savepoint;
    }
}
