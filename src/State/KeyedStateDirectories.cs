namespace StreamGrains.State;

/// <summary>
/// Where the keyed state of one operator subtask lives on local disk. The names are the local layout: a restarted
/// subtask finds its local-recovery copies by them, and everything under the working directory goes with the attempt.
/// </summary>
/// <param name="Working">
/// The RocksDB instance's directory, in the attempt's working directory (<c>{attempt}/{uid}</c>); the scratch
/// directories are its siblings, named after it.
/// </param>
/// <param name="LocalRecoveryRoot">
/// Where local copies of completed checkpoints are kept across attempts (<c>{local}/{uid}/kg-{start}-{end}</c>).
/// </param>
public sealed record KeyedStateDirectories(string Working, string LocalRecoveryRoot)
{
    /// <summary>Where a canonical restore downloads the canonical state files.</summary>
    public string CanonicalRestoreScratch => Working + ".restore";

    /// <summary>Where a rescaling restore puts the files of the handles other than its base.</summary>
    public string RescaleScratch => Working + ".rescale";

    /// <summary>Where a restore downloads the changelog tail it replays.</summary>
    public string ChangelogDownloads => Working + ".changelog";

    /// <summary>Incremental mode: hard links of the SST files the eager uploads read.</summary>
    public string EagerUploadStaging => Working + ".eager";

    /// <summary>Changelog mode: where canonical savepoints take their local views of the instance.</summary>
    public string CanonicalViews => Working + ".views";

    /// <summary>Incremental mode: the local copies of checkpoints (<c>chk-{n}</c>), also where a canonical savepoint takes its local view.</summary>
    public string LocalCheckpoints => LocalRecoveryRoot;

    /// <summary>Changelog mode: the local copies of materializations, apart from incremental checkpoints'.</summary>
    public string LocalMaterializations => Path.Combine(LocalRecoveryRoot, "materialized");

    /// <summary>
    /// The local-recovery root of operator <paramref name="uid"/> for <paramref name="keyGroups"/> under the job's local
    /// directory <paramref name="localRoot"/>: by Uid and key groups, not by attempt, so a restarted subtask finds it.
    /// </summary>
    public static string LocalRecoveryRootOf(string localRoot, string uid, KeyGroupRange keyGroups) =>
        Path.Combine(localRoot, uid, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"kg-{keyGroups.Start}-{keyGroups.End}"));
}
