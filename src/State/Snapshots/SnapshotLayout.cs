using System.Globalization;

namespace StreamGrains.State.Snapshots;

/// <summary>
/// Where things live in checkpoint storage:
/// <c>{job}/shared/{operator uid}/…</c> immutable shared files, <c>{job}/chk-{n}/…</c> private files of checkpoint
/// <c>n</c> and its manifest <c>{job}/chk-{n}/_manifest.json</c>, <c>{job}/_job.record</c> the job grain's record.
/// </summary>
public static class SnapshotLayout
{
    /// <summary>Name of the manifest file in a checkpoint or savepoint directory.</summary>
    public const string ManifestFileName = "_manifest.json";

    /// <summary>Directory of checkpoint <paramref name="checkpointId"/> of a job.</summary>
    public static string CheckpointDirectory(string jobId, long checkpointId) => string.Create(CultureInfo.InvariantCulture, $"{jobId}/chk-{checkpointId}");

    /// <summary>Path of the manifest of checkpoint <paramref name="checkpointId"/>.</summary>
    public static string ManifestPath(string jobId, long checkpointId) => $"{CheckpointDirectory(jobId, checkpointId)}/{ManifestFileName}";

    /// <summary>Directory of a job's shared files.</summary>
    public static string SharedDirectory(string jobId) => $"{jobId}/shared";

    /// <summary>Directory of a job's changelog segments and materializations (changelog mode).</summary>
    public static string ChangelogDirectory(string jobId) => $"{jobId}/changelog";

    /// <summary>Path of a job's record.</summary>
    public static string JobRecordPath(string jobId) => $"{jobId}/_job.record";

    /// <summary>The checkpoint id of a path <c>{job}/chk-{n}/_manifest.json</c>, or null when the path is not a checkpoint manifest.</summary>
    public static long? CheckpointIdOfManifest(string jobId, string path)
    {
        var prefix = $"{jobId}/chk-";
        if (!path.StartsWith(prefix, StringComparison.Ordinal) || !path.EndsWith("/" + ManifestFileName, StringComparison.Ordinal))
        {
            return null;
        }

        var number = path.AsSpan(prefix.Length, path.Length - prefix.Length - ManifestFileName.Length - 1);
        return long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : null;
    }

    /// <summary>The directory of a manifest path (empty for a manifest at the storage root).</summary>
    public static string DirectoryOfManifest(string manifestPath)
    {
        var slash = manifestPath.LastIndexOf('/');
        return slash < 0 ? string.Empty : manifestPath[..slash];
    }

    /// <summary>
    /// The manifest path a user gave in <see cref="JobSpec.RestoreFrom"/>: the manifest itself or its directory.
    /// </summary>
    public static string ManifestPathOf(string restoreFrom)
    {
        var path = restoreFrom.Trim().TrimEnd('/');
        return path.EndsWith("/" + ManifestFileName, StringComparison.Ordinal) || path == ManifestFileName ? path : $"{path}/{ManifestFileName}";
    }
}
