using StreamGrains.Client;

namespace StreamGrains.Grains.Tests;

public sealed class JobLifecycleTests(TwoSiloCluster fixture) : IClassFixture<TwoSiloCluster>
{
    private StreamGrainsClient Client => fixture.Cluster.Client;

    [Theory]
    [InlineData("duplicate-uid", "Uid 'same' is used by 2 operators")]
    [InlineData("stateful-without-uid", "keeps state but has no Uid")]
    [InlineData("operator-parallelism", "has parallelism 500, greater than the max parallelism 128")]
    public async Task Invalid_job_definitions_are_rejected_before_anything_runs(string invalidCase, string expectedError)
    {
        var jobId = JobId.New();
        var spec = new JobSpec { JobId = jobId, JobType = typeof(InvalidJob).FullName!, Parameters = JobParameters.Empty.With("case", invalidCase) };

        var error = await Assert.ThrowsAsync<JobSubmissionException>(() => Client.SubmitAsync(spec));

        Assert.Contains(expectedError, error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<JobNotFoundException>(() => Client.GetStatusAsync(jobId));
    }

    [Fact]
    public async Task Unknown_job_type_is_rejected_with_its_name()
    {
        var error = await Assert.ThrowsAsync<JobSubmissionException>(() => Client.SubmitAsync(new JobSpec { JobType = "No.Such.Job" }));

        Assert.Contains("Unknown job type 'No.Such.Job'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Parallelism_greater_than_max_parallelism_is_rejected()
    {
        var spec = new JobSpec { JobType = typeof(InvalidJob).FullName!, Parallelism = 9, MaxParallelism = 8 };

        var error = await Assert.ThrowsAsync<JobSubmissionException>(() => Client.SubmitAsync(spec));

        Assert.Contains("Parallelism 9 is greater than the max parallelism 8", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_job_id_cannot_be_reused()
    {
        var spec = new JobSpec { JobId = JobId.New(), JobType = typeof(InvalidJob).FullName! };
        await Client.SubmitAsync(spec);

        var error = await Assert.ThrowsAsync<JobSubmissionException>(() => Client.SubmitAsync(spec));

        Assert.Contains("already exists", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_exception_in_user_code_fails_the_job_with_operator_subtask_and_message()
    {
        var jobId = await fixture.Cluster.SubmitAsync<FailingJob>(JobParameters.Empty.With("failAt", 1234), parallelism: 2);

        var failed = await Assert.ThrowsAsync<JobFailedException>(() => Client.WaitForCompletionAsync(jobId, TimeSpan.FromMinutes(2)));

        var failure = failed.Status.Failure;
        Assert.NotNull(failure);
        Assert.Equal(JobState.Failed, failed.Status.State);
        Assert.Equal("explode", failure.OperatorUid);
        Assert.InRange(failure.SubtaskIndex, 0, 1);
        Assert.Equal(typeof(InvalidOperationException).FullName, failure.ExceptionType);
        Assert.Equal(FailingJob.Message, failure.Message);
        var status = await Client.GetStatusAsync(jobId);
        Assert.Equal(JobState.Failed, status.State);
        Assert.Contains("operator 'explode'", status.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_running_job_can_be_cancelled()
    {
        var jobId = await fixture.Cluster.SubmitAsync<EndlessJob>(parallelism: 2);
        await Client.WaitForStateAsync(jobId, JobState.Running, TimeSpan.FromMinutes(1));

        var status = await Client.CancelAsync(jobId);

        Assert.Equal(JobState.Canceled, status.State);
        Assert.NotNull(status.EndedAt);
        Assert.True(status.SourceRecords > 0, "the source should have emitted before the cancel");
        var final = await Client.WaitForCompletionAsync(jobId, TimeSpan.FromSeconds(30));
        Assert.Equal(JobState.Canceled, final.State);
    }
}
