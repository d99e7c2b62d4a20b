using System.Globalization;

namespace StreamGrains.Silo;

/// <summary>
/// How the silos find out that one of them failed (section <c>Cluster:Membership</c>): Orleans' membership probes.
/// Unset values keep Orleans' defaults (a probe every 5 s, a silo suspected after 3 missed probes, declared dead on 2
/// votes: about 15 s). A silo whose process is gone is declared dead sooner anyway, as soon as its port refuses
/// connections (<c>StreamGrains:DeclareCrashedSilosDead</c>); these settings decide how fast a silo that hangs or
/// whose machine is unreachable is declared dead, and how easily a slow one is.
/// </summary>
internal sealed class MembershipSettings
{
    /// <summary>Time between probes of a silo, and the base of a probe's timeout. Orleans' default: 5 s.</summary>
    public TimeSpan? ProbeTimeout { get; set; }

    /// <summary>Missed probes after which a silo votes a silo dead. Orleans' default: 3.</summary>
    public int? MissedProbesLimit { get; set; }

    /// <summary>Votes that declare a silo dead. Orleans' default: 2 (with fewer silos, all others).</summary>
    public int? VotesForDeathDeclaration { get; set; }

    public IEnumerable<string> Validate()
    {
        if (ProbeTimeout is { } probe && (probe < TimeSpan.FromMilliseconds(100) || probe > TimeSpan.FromMinutes(10)))
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"Cluster:Membership:ProbeTimeout must be between 00:00:00.1 and 00:10:00, was {probe}.");
        }

        if (MissedProbesLimit is < 1 or > 100)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"Cluster:Membership:MissedProbesLimit must be between 1 and 100, was {MissedProbesLimit}.");
        }

        if (VotesForDeathDeclaration is < 1 or > 100)
        {
            yield return string.Create(CultureInfo.InvariantCulture, $"Cluster:Membership:VotesForDeathDeclaration must be between 1 and 100, was {VotesForDeathDeclaration}.");
        }
    }

    /// <summary>Applies the values that are set to Orleans' options.</summary>
    public void ApplyTo(Orleans.Configuration.ClusterMembershipOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (ProbeTimeout is { } probe)
        {
            options.ProbeTimeout = probe;
        }

        if (MissedProbesLimit is { } missed)
        {
            options.NumMissedProbesLimit = missed;
        }

        if (VotesForDeathDeclaration is { } votes)
        {
            options.NumVotesForDeathDeclaration = votes;
        }
    }

    /// <summary>For the start summary: the probe settings in effect.</summary>
    public string Describe()
    {
        var defaults = new Orleans.Configuration.ClusterMembershipOptions();
        ApplyTo(defaults);
        return string.Create(CultureInfo.InvariantCulture, $"probe every {defaults.ProbeTimeout.TotalSeconds:0.###} s, suspect after {defaults.NumMissedProbesLimit} missed, dead on {defaults.NumVotesForDeathDeclaration} votes");
    }
}
