using Microsoft.Extensions.Logging;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Subtasks;

/// <summary>Where one subtask attempt keeps its files on the silo, and what it deletes when it stops.</summary>
/// <remarks>
/// Layout below the silo's state directory: <c>{job}/work/{chain}-{index}-a{attempt}</c> is the attempt's working
/// directory (its RocksDB instances and scratch files), its own, so a new attempt never waits for an old one's;
/// <c>{job}/local/{operator uid}/kg-{start}-{end}</c> holds the local copies of an operator's checkpoints for a key-group
/// range (<see cref="State.KeyedStateDirectories.LocalRecoveryRootOf"/>), which the next attempt on this silo
/// restores from.
/// </remarks>
internal sealed class SubtaskDirectories(string stateDirectory, SubtaskId subtask, ILogger logger)
{
    /// <summary>The job's directory on this silo, shared by all its subtasks here.</summary>
    public string Job => Path.Combine(stateDirectory, subtask.Job.Value);

    /// <summary>The working directory of this attempt of the subtask.</summary>
    public string Working => Path.Combine(Job, "work", $"{subtask.Chain}-{subtask.Index}-a{subtask.Attempt}");

    /// <summary>The root of the local checkpoint copies of every subtask of the job on this silo.</summary>
    public string LocalCheckpointRoot => Path.Combine(Job, "local");

    /// <summary>
    /// Deletes what the stopped subtask leaves behind: its working directory (when <paramref name="deleteWorkingDirectory"/>),
    /// the local checkpoint copies of its stateful operators for its key groups (only when the job ended: after a
    /// failover the next attempt restores from them), and then the job's directories that are left empty (not after a
    /// failover: the next attempt is creating its directories under the same parents right now).
    /// </summary>
    /// <param name="reason">Why the subtask stopped.</param>
    /// <param name="deleteWorkingDirectory">Whether to delete the working directory (the silo's setting).</param>
    /// <param name="statefulOperators">The Uids of the subtask's stateful operators.</param>
    /// <param name="keyGroups">The subtask's key groups.</param>
    public void CleanUp(StopReason reason, bool deleteWorkingDirectory, IEnumerable<string> statefulOperators, KeyGroupRange keyGroups)
    {
        if (deleteWorkingDirectory)
        {
            DeleteDirectory(Working);
        }

        if (reason == StopReason.JobEnded)
        {
            foreach (var uid in statefulOperators)
            {
                DeleteDirectory(State.KeyedStateDirectories.LocalRecoveryRootOf(LocalCheckpointRoot, uid, keyGroups));
            }
        }

        if (reason != StopReason.Failover)
        {
            DeleteEmptyDirectories(Job);
        }
    }

    /// <summary>Removes empty directories below and including <paramref name="directory"/> (other subtasks may be using the rest).</summary>
    private static void DeleteEmptyDirectories(string directory)
    {
        try
        {
            if (!Directory.Exists(directory))
            {
                return;
            }

            foreach (var child in Directory.EnumerateDirectories(directory))
            {
                DeleteEmptyDirectories(child);
            }

            if (!Directory.EnumerateFileSystemEntries(directory).Any())
            {
                Directory.Delete(directory);
            }
        }
        catch (IOException)
        {
            // Another subtask of the job on this silo created or removed something meanwhile.
        }
    }

    private void DeleteDirectory(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (IOException ex)
        {
            logger.LogWarning(ex, "Subtask {Subtask}: could not delete {Directory}", subtask, directory);
        }
    }
}
