using StreamGrains.Grains.Connectors;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests;

public sealed class CollectedRowsTests
{
    [Fact]
    public void Batches_of_a_sender_are_applied_in_sequence_order_and_duplicates_are_ignored()
    {
        var rows = new CollectedRows();

        Assert.Equal(0, rows.Accept(Batch(sender: 0, sequence: 1, [3, 4])));
        Assert.Equal(BatchDisposition.Duplicate, rows.Classify(Batch(sender: 0, sequence: 1, [3, 4])));
        Assert.Equal(0, rows.Count);
        Assert.Equal(1, rows.Accept(Batch(sender: 1, sequence: 0, [10])));
        Assert.Equal(2, rows.Accept(Batch(sender: 0, sequence: 0, [1, 2])));
        Assert.Equal(BatchDisposition.Duplicate, rows.Classify(Batch(sender: 0, sequence: 0, [1, 2])));

        Assert.Equal([10, 1, 2, 3, 4], Values(rows));
        Assert.Equal(2, rows.AppliedOf(0));
        Assert.Equal(1, rows.AppliedOf(1));
        Assert.Throws<InvalidOperationException>(() => rows.Accept(Batch(sender: 0, sequence: 1, [3, 4])));
    }

    [Fact]
    public void Upsert_keeps_the_last_record_per_key_at_the_position_of_the_first()
    {
        var rows = new CollectedRows();

        rows.Accept(Batch(sender: 0, sequence: 0, [1, 2, 3], keys: ["a", "b", "a"]));
        rows.Accept(Batch(sender: 0, sequence: 1, [4, 5], keys: ["b", null]));

        Assert.Equal([3, 4, 5], Values(rows));
    }

    [Fact]
    public void A_new_attempt_from_a_checkpoint_keeps_what_its_taker_wrote_before_the_barrier_and_drops_the_rest()
    {
        var rows = new CollectedRows();
        rows.Accept(Batch(sender: 0, sequence: 0, [1], attempt: 1, after: 0));
        rows.Accept(Batch(sender: 0, sequence: 1, [2], attempt: 1, after: 3));
        rows.Accept(Batch(sender: 0, sequence: 2, [3], attempt: 1, after: 5));
        rows.Accept(Batch(sender: 1, sequence: 0, [10], attempt: 1, after: 4));

        // Attempt 2 restores checkpoint 5 of attempt 1: rows written after barrier 5 are written again.
        rows.Accept(Batch(sender: 0, sequence: 0, [30], attempt: 2, after: 5, restoredFrom: (5, 1)));

        Assert.Equal([1, 2, 10, 30], Values(rows));
        Assert.Equal(BatchDisposition.Stale, rows.Classify(Batch(sender: 1, sequence: 1, [11], attempt: 1, after: 5)));

        // Attempt 3 restores checkpoint 5 again (attempt 2 took none): attempt 2's rows go, attempt 1's up to barrier 5 stay.
        rows.Accept(Batch(sender: 1, sequence: 0, [], attempt: 3, after: 5, restoredFrom: (5, 1)));
        Assert.Equal([1, 2, 10], Values(rows));

        // Attempt 4 restores checkpoint 8 that attempt 3 took: everything of attempt 3 before barrier 8 stays.
        rows.Accept(Batch(sender: 0, sequence: 0, [40], attempt: 3, after: 5));
        rows.Accept(Batch(sender: 0, sequence: 1, [41], attempt: 3, after: 8));
        rows.Accept(Batch(sender: 0, sequence: 0, [50], attempt: 4, after: 8, restoredFrom: (8, 3)));
        Assert.Equal([1, 2, 10, 40, 50], Values(rows));
    }

    [Fact]
    public void A_new_attempt_that_falls_back_to_an_older_checkpoint_drops_what_attempts_after_its_taker_wrote()
    {
        var rows = new CollectedRows();
        rows.Accept(Batch(sender: 0, sequence: 0, [1], attempt: 1, after: 0));
        rows.Accept(Batch(sender: 0, sequence: 1, [2], attempt: 1, after: 4));
        rows.Accept(Batch(sender: 0, sequence: 2, [3], attempt: 1, after: 6));

        // Attempt 2 falls back to checkpoint 4 (6 unreadable) and writes after it; attempt 3 restores checkpoint 6 after all.
        rows.Accept(Batch(sender: 0, sequence: 0, [20], attempt: 2, after: 4, restoredFrom: (4, 1)));
        rows.Accept(Batch(sender: 0, sequence: 0, [30], attempt: 3, after: 6, restoredFrom: (6, 1)));

        Assert.Equal([1, 2, 30], Values(rows));
    }

    [Fact]
    public void A_new_attempt_from_scratch_drops_everything_earlier_and_upserts_are_rebuilt()
    {
        var rows = new CollectedRows();
        rows.Accept(Batch(sender: 0, sequence: 0, [1, 2], attempt: 1, keys: ["a", "b"]));

        rows.Accept(Batch(sender: 0, sequence: 0, [3], attempt: 2, keys: ["b"]));

        Assert.Equal([3], Values(rows));
        Assert.Equal(2, rows.Attempt);
    }

    [Fact]
    public void Replaying_the_batches_in_order_of_attempt_sender_and_sequence_gives_the_same_rows()
    {
        var random = new Random(17);
        var arrived = new List<CollectedBatch>();
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            var restoredFrom = attempt == 1 ? ((long, int)?)null : (attempt * 10, attempt - 1);
            for (var sender = 0; sender < 3; sender++)
            {
                for (var sequence = 0; sequence < 5; sequence++)
                {
                    var after = (attempt * 10) + (sequence * 3);
                    arrived.Add(Batch(sender, sequence, [(attempt * 1000) + (sender * 100) + sequence], attempt, after, restoredFrom));
                }
            }
        }

        // Arrival: attempts in order, senders and sequences shuffled within an attempt.
        var shuffled = arrived.GroupBy(static b => b.Attempt).SelectMany(g => g.OrderBy(_ => random.Next())).ToList();
        var live = new CollectedRows();
        foreach (var batch in shuffled)
        {
            live.Accept(batch);
        }

        var replayed = new CollectedRows();
        foreach (var batch in shuffled.OrderBy(static b => b.Attempt).ThenBy(static b => b.SenderIndex).ThenBy(static b => b.Sequence))
        {
            replayed.Accept(batch);
        }

        Assert.Equal(Values(live).Order(), Values(replayed).Order());
        // Attempt 3 restored checkpoint 30 of attempt 2, which restored checkpoint 20 of attempt 1: of each earlier
        // attempt, four batches per sender were written before the barrier (after = 10, 13, 16, 19 and 20, 23, 26, 29).
        Assert.Equal(3 * (4 + 4 + 5), live.Count);
        Assert.Contains(3004, Values(live));
        Assert.Contains(2003, Values(live));
        Assert.DoesNotContain(2004, Values(live));
        Assert.DoesNotContain(1004, Values(live));
    }

    [Fact]
    public void Prefix_and_paths_follow_the_job_and_an_encoded_sink_name()
    {
        Assert.Equal("job-1/collected/counts", CollectorGrain.PrefixOf("job-1/counts"));
        Assert.Equal("job-1/collected/~612f62", CollectorGrain.PrefixOf("job-1/a/b"));
        Assert.Equal("job-1/collected/~2e2e", CollectorGrain.PrefixOf("job-1/.."));
        Assert.Equal("p/000002-000001-000000000007", CollectorGrain.PathOf("p", Batch(sender: 1, sequence: 7, [], attempt: 2)));
        Assert.Throws<ArgumentException>(() => CollectorGrain.PrefixOf("no-slash"));
    }

    private static CollectedBatch Batch(int sender, long sequence, int[] values, int attempt = 1, long after = 0, (long Checkpoint, int Attempt)? restoredFrom = null, string?[]? keys = null) => new()
    {
        SenderIndex = sender,
        Sequence = sequence,
        Attempt = attempt,
        Records = values.Cast<object?>().ToArray(),
        Keys = keys?.Cast<object?>().ToArray(),
        After = after,
        RestoredCheckpointId = restoredFrom?.Checkpoint ?? 0,
        RestoredCheckpointAttempt = restoredFrom?.Attempt ?? 0,
    };

    private static int[] Values(CollectedRows rows) => rows.Read(0, int.MaxValue).Cast<int>().ToArray();
}
