using Microsoft.Extensions.Logging.Abstractions;
using StreamGrains.Grains.Operators;
using StreamGrains.Grains.Subtasks;
using StreamGrains.Runtime;

namespace StreamGrains.Grains.Tests.Subtasks;

public sealed class SubtaskLifecycleTests
{
    private static readonly SubtaskId Self = new(new JobId("lifecycle"), Chain: 0, Index: 3, Attempt: 2);
    private readonly RecordingListener _listener = new();
    private readonly SubtaskLifecycle _lifecycle;

    public SubtaskLifecycleTests() => _lifecycle = new SubtaskLifecycle(Self, _listener, NullLogger.Instance);

    [Fact]
    public void A_running_subtask_finishes_once_and_reports_it()
    {
        _lifecycle.Finish();
        Assert.Equal((SubtaskState.Created, 0), (_lifecycle.State, _listener.Finished));

        _lifecycle.Opened();
        _lifecycle.Started();
        _lifecycle.Finish();
        _lifecycle.Finish();

        Assert.Equal((SubtaskState.Finished, 1), (_lifecycle.State, _listener.Finished));
    }

    [Fact]
    public void A_failure_in_user_code_names_the_operator_and_is_reported_once()
    {
        _lifecycle.Opened();
        _lifecycle.Started();

        _lifecycle.Fail(new OperatorException("parse", new FormatException("bad record")));
        _lifecycle.Fail(new InvalidOperationException("later"));

        Assert.Equal(SubtaskState.Failed, _lifecycle.State);
        var failure = Assert.Single(_listener.Failures);
        Assert.Equal((JobFailureKind.UserCode, "parse", Self.Index, "bad record", typeof(FormatException).FullName), (failure.Kind, failure.OperatorUid, failure.SubtaskIndex, failure.Message, failure.ExceptionType));
    }

    [Fact]
    public void A_failure_of_the_runtime_names_no_operator()
    {
        _lifecycle.Opened();

        _lifecycle.Fail(new InvalidOperationException("could not deliver a batch"));

        var failure = Assert.Single(_listener.Failures);
        Assert.Equal((JobFailureKind.Runtime, null, Self.Index), (failure.Kind, failure.OperatorUid, failure.SubtaskIndex));
    }

    [Fact]
    public void A_canceled_subtask_neither_fails_nor_finishes_and_a_finished_one_stays_finished()
    {
        _lifecycle.Opened();
        _lifecycle.Started();
        _lifecycle.Cancel();
        _lifecycle.Fail(new InvalidOperationException("stopping"));
        _lifecycle.Finish();

        Assert.Equal(SubtaskState.Canceled, _lifecycle.State);
        Assert.Empty(_listener.Failures);
        Assert.Equal(0, _listener.Finished);

        var finished = new SubtaskLifecycle(Self, _listener, NullLogger.Instance);
        finished.Opened();
        finished.Started();
        finished.Finish();
        finished.Cancel();

        Assert.Equal(SubtaskState.Finished, finished.State);
    }
}
