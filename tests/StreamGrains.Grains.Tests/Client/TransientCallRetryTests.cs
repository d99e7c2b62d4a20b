using StreamGrains.Client;

namespace StreamGrains.Grains.Tests;

public sealed class TransientCallRetryTests
{
    [Fact]
    public async Task A_call_that_fails_transiently_a_few_times_is_retried_until_it_answers()
    {
        var retry = new TransientCallRetry(TimeSpan.FromSeconds(10), TimeProvider.System);
        var errors = new Queue<Exception>([new SiloUnavailableException("silo gone"), new TimeoutException("response did not arrive"), new SiloUnavailableException("still gone")]);
        var calls = 0;

        var answer = await retry.RunAsync("reading", () =>
        {
            calls++;
            return errors.TryDequeue(out var error) ? Task.FromException<int>(error) : Task.FromResult(42);
        }, CancellationToken.None);

        Assert.Equal(42, answer);
        Assert.Equal(4, calls);
    }

    [Fact]
    public async Task A_call_that_keeps_failing_transiently_ends_as_a_typed_exception_within_the_budget()
    {
        var budget = TimeSpan.FromMilliseconds(800);
        var retry = new TransientCallRetry(budget, TimeProvider.System);
        var calls = 0;
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<ClusterUnavailableException>(() => retry.RunAsync<int>("reading the status", () =>
        {
            calls++;
            throw new SiloUnavailableException("silo gone");
        }, CancellationToken.None));

        Assert.True(watch.Elapsed <= budget + TimeSpan.FromSeconds(1), $"gave up after {watch.Elapsed}, budget {budget}");
        Assert.True(calls is >= 3 and <= 6, $"{calls} calls");
        Assert.IsType<SiloUnavailableException>(error.InnerException);
        Assert.StartsWith("reading the status failed: the cluster was unreachable", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_try_that_failed_only_after_longer_than_the_budget_is_still_tried_again()
    {
        // As a call sent through the gateway of a killed silo: it fails at the response timeout, longer than the budget.
        var retry = new TransientCallRetry(TimeSpan.FromMilliseconds(300), TimeProvider.System);
        var calls = 0;

        var answer = await retry.RunAsync("waiting for the savepoint", async () =>
        {
            if (++calls == 1)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(600));
                throw new TimeoutException("Response did not arrive on time");
            }

            return 42;
        }, CancellationToken.None);

        Assert.Equal((42, 2), (answer, calls));
    }

    [Fact]
    public async Task Other_exceptions_pass_unchanged_and_are_not_retried()
    {
        var retry = new TransientCallRetry(TimeSpan.FromSeconds(10), TimeProvider.System);
        var calls = 0;

        await Assert.ThrowsAsync<InvalidOperationException>(() => retry.RunAsync<int>("reading", () =>
        {
            calls++;
            throw new InvalidOperationException("not running");
        }, CancellationToken.None));

        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task A_call_that_must_not_be_repeated_is_tried_once_and_a_transient_failure_becomes_typed()
    {
        var calls = 0;

        var error = await Assert.ThrowsAsync<ClusterUnavailableException>(() => TransientCallRetry.RunOnceAsync<int>("submitting", () =>
        {
            calls++;
            throw new InvalidOperationException("wrapped", new SiloUnavailableException("silo gone"));
        }));

        Assert.Equal(1, calls);
        Assert.Contains("may or may not have taken effect", error.Message, StringComparison.Ordinal);
        Assert.True(TransientCallRetry.IsTransient(new TimeoutException()));
        Assert.False(TransientCallRetry.IsTransient(new JobNotFoundException(new JobId("x"))));
    }
}
