using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Orleans.Serialization;
using StreamGrains.Runtime;
using StreamGrains.State.Storage;

namespace StreamGrains.Grains.Connectors;

/// <summary>
/// Keeps the records of one collect sink: in memory for reading (<see cref="CollectedRows"/> says how batches become
/// rows), and every batch it accepts in checkpoint storage, written before the call returns. An activation loads the
/// stored batches again, so the rows survive the loss of the collector's silo, or its re-creation elsewhere when its
/// directory entry was lost.
/// </summary>
/// <remarks>
/// Each batch is one object, <c>{jobId}/collected/{sink}/{attempt}-{sender}-{sequence}</c>: the name follows from the
/// batch, so a batch stored twice (a retried call, two activations for a moment) is the same object. Stale batches (of
/// older attempts) are dropped without being stored. A batch that cannot be stored fails the call, and the sink's
/// attempt with it; a stored batch that cannot be read fails the activation, so readers and writers see an error, never
/// fewer rows.
/// </remarks>
[GrainType("streamgrains.collector")]
[CollectionAgeLimit(AlwaysActive = true)]
internal sealed class CollectorGrain(ICheckpointStorage storage, Serializer<CollectedBatch> serializer, ILogger<CollectorGrain> logger) : Grain, ICollectorGrain
{
    private const int ParallelReads = 8;
    private CollectedRows _rows = new();

    /// <summary>Where the batches of this collector are stored.</summary>
    private string Prefix => PrefixOf(this.GetPrimaryKeyString());

    /// <summary>
    /// The storage prefix of the collector with grain key <c>{jobId}/{sink name}</c>: <c>{jobId}/collected/{sink}</c>,
    /// the sink's name as it is when it is made of letters, digits, '-', '_' and '.', otherwise as '~' and the hex digits
    /// of its UTF-8 bytes.
    /// </summary>
    public static string PrefixOf(string collectorKey)
    {
        ArgumentNullException.ThrowIfNull(collectorKey);
        var slash = collectorKey.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            throw new ArgumentException($"'{collectorKey}' is not a collector key ({{jobId}}/{{sink name}}).", nameof(collectorKey));
        }

        var name = collectorKey[(slash + 1)..];
        var plain = name.Length > 0 && name is not ("." or "..") && name.All(static c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
        return $"{collectorKey[..slash]}/collected/{(plain ? name : "~" + Convert.ToHexStringLower(Encoding.UTF8.GetBytes(name)))}";
    }

    /// <summary>The object a batch is stored in.</summary>
    public static string PathOf(string prefix, CollectedBatch batch) =>
        string.Create(CultureInfo.InvariantCulture, $"{prefix}/{batch.Attempt:D6}-{batch.SenderIndex:D6}-{batch.Sequence:D12}");

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var prefix = Prefix;
        var paths = new List<string>();
        await foreach (var stored in storage.ListAsync(prefix, cancellationToken))
        {
            paths.Add(stored.Path);
        }

        if (paths.Count == 0)
        {
            return;
        }

        var batches = new ConcurrentBag<CollectedBatch>();
        await Task.Run(
            () => Parallel.ForEachAsync(paths, new ParallelOptions { MaxDegreeOfParallelism = ParallelReads, CancellationToken = cancellationToken }, async (path, token) =>
            {
                var bytes = await storage.ReadAsync(path, token)
                    ?? throw new CheckpointStorageException($"Collected batch '{path}' was listed but cannot be read; the collector's rows would be incomplete.");
                batches.Add(serializer.Deserialize(bytes) ?? throw new CheckpointStorageException($"Collected batch '{path}' is empty."));
            }),
            cancellationToken);

        var rows = new CollectedRows();
        foreach (var batch in batches.OrderBy(static b => b.Attempt).ThenBy(static b => b.SenderIndex).ThenBy(static b => b.Sequence))
        {
            if (rows.Classify(batch) == BatchDisposition.New)
            {
                rows.Accept(batch);
            }
        }

        _rows = rows;
        logger.LogInformation("Collector {Collector}: loaded {Batches} stored batches, {Rows} rows", this.GetPrimaryKeyString(), paths.Count, rows.Count);
    }

    public async Task<long> Append(CollectedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        switch (_rows.Classify(batch))
        {
            case BatchDisposition.Stale:
                return -1;
            case BatchDisposition.Duplicate:
                return _rows.AppliedOf(batch.SenderIndex);
        }

        // Stored before it is applied and acknowledged: an acknowledged batch is never lost with this activation.
        await storage.WriteAsync(PathOf(Prefix, batch), serializer.SerializeToArray(batch), overwrite: true, CancellationToken.None);
        return _rows.Classify(batch) == BatchDisposition.New ? _rows.Accept(batch) : _rows.AppliedOf(batch.SenderIndex);
    }

    public Task<CollectedPage> Read(int offset, int count) =>
        Task.FromResult(new CollectedPage { Records = _rows.Read(offset, count), Total = _rows.Count });

    public async Task Clear()
    {
        await storage.DeletePrefixAsync(Prefix, CancellationToken.None);
        _rows = new CollectedRows();
    }
}
