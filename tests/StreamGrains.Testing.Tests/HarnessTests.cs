using StreamGrains.Functions;
using StreamGrains.State;

namespace StreamGrains.Testing.Tests;

[GenerateSerializer, Immutable]
public sealed record Visit([property: Id(0)] string User, [property: Id(1)] string Page);

[GenerateSerializer, Immutable]
public sealed record Session([property: Id(0)] string User, [property: Id(1)] int Visits, [property: Id(2)] long ClosedAt);

/// <summary>Closes a user's session after <see cref="Timeout"/> without visits; keeps the pages of the open session.</summary>
public sealed class SessionWindow : KeyedProcessFunction<string, Visit, Session>
{
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(30);
    public static readonly ValueStateDescriptor<long> Deadline = new("deadline");
    public static readonly ListStateDescriptor<string> Pages = new("pages");
    public static readonly MapStateDescriptor<string, int> PageCounts = new("page-counts");

    private IValueState<long>? _deadline;
    private IListState<string>? _pages;
    private IMapState<string, int>? _pageCounts;

    public override void Open(IKeyedRuntimeContext context)
    {
        _deadline = context.GetValueState(Deadline);
        _pages = context.GetListState(Pages);
        _pageCounts = context.GetMapState(PageCounts);
    }

    public override void ProcessElement(Visit value, IKeyedProcessContext<string> context, ICollector<Session> output)
    {
        if (value.Page == "crash")
        {
            throw new InvalidOperationException($"cannot visit {value.Page}");
        }

        if (_deadline!.TryGet(out var old))
        {
            context.TimerService.DeleteProcessingTimeTimer(old);
        }

        var deadline = context.TimerService.CurrentProcessingTime + (long)Timeout.TotalMilliseconds;
        context.TimerService.RegisterProcessingTimeTimer(deadline);
        _deadline.Update(deadline);
        _pages!.Add(value.Page);
        _pageCounts!.Put(value.Page, _pageCounts.TryGet(value.Page, out var n) ? n + 1 : 1);
    }

    public override void OnTimer(long timestamp, IKeyedProcessContext<string> context, ICollector<Session> output)
    {
        output.Collect(new Session(context.CurrentKey, _pages!.Get().Count, timestamp));
        _deadline!.Clear();
        _pages.Clear();
        _pageCounts!.Clear();
    }
}

public sealed class HarnessTests
{
    private static KeyedProcessFunctionHarness<string, Visit, Session> NewHarness() => new(new SessionWindow(), static v => v.User);

    [Fact]
    public async Task A_session_closes_once_after_the_timeout_and_not_before()
    {
        await using var harness = NewHarness();
        var start = harness.Clock.UnixMilliseconds;
        harness.ProcessElement(new Visit("ann", "home"));
        harness.AdvanceProcessingTime(TimeSpan.FromMinutes(10));
        harness.ProcessElement(new Visit("ann", "cart"));

        harness.AdvanceProcessingTime(TimeSpan.FromMinutes(29));
        Assert.Empty(harness.Output);

        harness.AdvanceProcessingTime(TimeSpan.FromMinutes(1));
        var session = Assert.Single(harness.Output);
        Assert.Equal(new Session("ann", 2, start + (long)TimeSpan.FromMinutes(40).TotalMilliseconds), session);

        harness.AdvanceProcessingTime(TimeSpan.FromHours(5));
        Assert.Single(harness.Output);
        Assert.Equal(0, harness.PendingTimers);
    }

    [Fact]
    public async Task State_is_kept_per_key_and_cleared_by_the_timer()
    {
        await using var harness = NewHarness();
        harness.ProcessElements([new Visit("ann", "home"), new Visit("bob", "shop"), new Visit("ann", "home"), new Visit("ann", "faq")]);

        Assert.Equal(["home", "home", "faq"], harness.GetListState("ann", SessionWindow.Pages));
        Assert.Equal(["shop"], harness.GetListState("bob", SessionWindow.Pages));
        Assert.Equal([new("faq", 1), new("home", 2)], harness.GetMapState("ann", SessionWindow.PageCounts));
        Assert.Equal(2, harness.PendingTimers);

        harness.AdvanceProcessingTime(SessionWindow.Timeout);

        Assert.Equal(["ann", "bob"], harness.Output.Select(static s => s.User).Order());
        Assert.Empty(harness.GetListState("ann", SessionWindow.Pages));
        Assert.Equal(0L, harness.GetValueState("bob", SessionWindow.Deadline));
    }

    [Fact]
    public async Task Timers_of_many_keys_fire_in_timestamp_order()
    {
        await using var harness = NewHarness();
        var random = new Random(11);
        var users = Enumerable.Range(0, 50).Select(static i => $"user-{i}").ToArray();
        foreach (var _ in Enumerable.Range(0, 500))
        {
            harness.ProcessElement(new Visit(users[random.Next(users.Length)], "page"));
            harness.AdvanceProcessingTime(TimeSpan.FromSeconds(random.Next(1, 20)));
        }

        harness.AdvanceProcessingTime(TimeSpan.FromDays(1));

        var closedAt = harness.Output.Select(static s => s.ClosedAt).ToArray();
        Assert.Equal(closedAt.Order(), closedAt);
        Assert.Equal(500, harness.Output.Sum(static s => s.Visits));
    }

    [Fact]
    public async Task An_exception_in_the_function_names_the_operator()
    {
        await using var harness = NewHarness();

        var error = Assert.Throws<UserCodeException>(() => harness.ProcessElement(new Visit("ann", "crash")));

        Assert.Equal("harness", error.OperatorUid);
        Assert.IsType<InvalidOperationException>(error.InnerException);
        Assert.Contains("cannot visit crash", error.Message, StringComparison.Ordinal);
    }
}
