using StreamGrains.Graph;

namespace StreamGrains.Abstractions.Tests;

public sealed class JobPlanTests
{
    [Fact]
    public void Duplicate_uid_is_rejected_with_a_message_naming_the_uid()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Uid("twice").Sink(Ops.Discard()).Uid("out-1");
        builder.Source(Ops.Numbers()).Uid("twice").Sink(Ops.Discard()).Uid("out-2");

        var error = Assert.Throws<JobValidationException>(() => JobPlan.Create(builder.Nodes, 1, 128));

        var message = Assert.Single(error.Errors);
        Assert.Contains("'twice'", message, StringComparison.Ordinal);
        Assert.Contains("'twice'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Duplicate_uid_on_a_stateless_operator_is_rejected_too()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Uid("numbers").Map(static x => x).Uid("same").Sink(Ops.Discard()).Uid("same");

        var error = Assert.Throws<JobValidationException>(() => JobPlan.Create(builder.Nodes, 1, 128));

        Assert.Contains("'same'", Assert.Single(error.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Keyed_process_without_uid_is_rejected()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Uid("numbers").KeyBy(static x => x).Process(new NoOpProcess()).Sink(Ops.Discard());

        var error = Assert.Throws<JobValidationException>(() => JobPlan.Create(builder.Nodes, 1, 128));

        var message = Assert.Single(error.Errors);
        Assert.Contains("process", message, StringComparison.Ordinal);
        Assert.Contains("has no Uid", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Source_without_uid_is_rejected()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Map(static x => x).Sink(Ops.Discard());

        var error = Assert.Throws<JobValidationException>(() => JobPlan.Create(builder.Nodes, 1, 128));

        var message = Assert.Single(error.Errors);
        Assert.Contains("source", message, StringComparison.Ordinal);
        Assert.Contains("has no Uid", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stateless_operators_do_not_need_a_uid()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Uid("numbers").Map(static x => x).Filter(static x => x > 0).Sink(Ops.Discard());

        var plan = JobPlan.Create(builder.Nodes, 1, 128);

        Assert.Equal(4, plan.Nodes.Count);
        Assert.Equal("#1:map", plan.Nodes[1].EffectiveUid);
    }

    [Fact]
    public void Operator_parallelism_above_max_parallelism_is_rejected_naming_the_operator()
    {
        var builder = new StreamBuilder(maxParallelism: 16);
        builder.Source(Ops.Numbers()).Uid("numbers").Map(static x => x).Uid("too-wide").Parallelism(17).Sink(Ops.Discard());

        var error = Assert.Throws<JobValidationException>(() => JobPlan.Create(builder.Nodes, 1, 16));

        var message = Assert.Single(error.Errors);
        Assert.Contains("'too-wide'", message, StringComparison.Ordinal);
        Assert.Contains("17", message, StringComparison.Ordinal);
        Assert.Contains("16", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Operator_parallelism_equal_to_max_parallelism_is_accepted()
    {
        var builder = new StreamBuilder(maxParallelism: 16);
        builder.Source(Ops.Numbers()).Uid("numbers").Parallelism(16).Sink(Ops.Discard());

        var plan = JobPlan.Create(builder.Nodes, 1, 16);

        // The sink takes the default parallelism, so it runs in its own chain.
        Assert.Equal([16, 1], plan.Chains.Select(static c => c.Parallelism));
        Assert.Equal(Partitioning.Rebalance, Assert.Single(plan.Edges).Partitioning);
    }

    [Fact]
    public void Default_parallelism_above_max_parallelism_is_rejected()
    {
        var spec = new JobSpec { JobType = typeof(KeyedPipelineJob).FullName!, Parallelism = 200, MaxParallelism = 128 };

        var error = Assert.Throws<JobValidationException>(() => JobDefinitions.Plan(new KeyedPipelineJob(), spec));

        var message = Assert.Single(error.Errors);
        Assert.Contains("200", message, StringComparison.Ordinal);
        Assert.Contains("128", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_problem_is_reported_at_once()
    {
        var builder = new StreamBuilder(maxParallelism: 8);
        builder.Source(Ops.Numbers()).Uid("dup").Sink(Ops.Discard()).Uid("dup");
        builder.Source(Ops.Numbers()).Uid("numbers")
            .KeyBy(static x => x).Process(new NoOpProcess())
            .Map(static x => x).Uid("wide").Parallelism(9)
            .Sink(Ops.Discard());

        var error = Assert.Throws<JobValidationException>(() => JobPlan.Create(builder.Nodes, 10, 8));

        Assert.Equal(4, error.Errors.Count);
        Assert.Single(error.Errors, static e => e.Contains("'dup'", StringComparison.Ordinal));
        Assert.Single(error.Errors, static e => e.Contains("has no Uid", StringComparison.Ordinal));
        Assert.Single(error.Errors, static e => e.Contains("'wide'", StringComparison.Ordinal));
        Assert.Single(error.Errors, static e => e.Contains("Parallelism 10", StringComparison.Ordinal));
        Assert.All(error.Errors, e => Assert.Contains(e, error.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void A_job_without_operators_is_rejected()
    {
        var error = Assert.Throws<JobValidationException>(() => JobPlan.Create([], 1, 128));

        Assert.Contains("no operators", Assert.Single(error.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_job_type_is_rejected_naming_the_type()
    {
        var error = Assert.Throws<JobValidationException>(() => JobDefinitions.Plan(new JobSpec { JobType = "No.Such.Type" }));

        Assert.Contains("No.Such.Type", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void Empty_job_type_is_rejected(string jobType) =>
        Assert.Throws<JobValidationException>(() => JobDefinitions.Plan(new JobSpec { JobType = jobType }));

    [Theory]
    [InlineData(typeof(NotAJob))]
    [InlineData(typeof(AbstractJob))]
    [InlineData(typeof(IStreamJob))]
    public void A_type_that_is_not_a_concrete_job_is_rejected(Type type)
    {
        var error = Assert.Throws<JobValidationException>(() => JobDefinitions.Plan(new JobSpec { JobType = type.FullName! }));

        Assert.Contains(type.FullName!, error.Message, StringComparison.Ordinal);
        Assert.Contains("IStreamJob", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_job_without_a_public_parameterless_constructor_is_rejected()
    {
        var error = Assert.Throws<JobValidationException>(() => JobDefinitions.Plan(new JobSpec { JobType = typeof(JobWithoutDefaultConstructor).FullName! }));

        Assert.Contains("parameterless constructor", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_job_is_found_by_its_full_name_and_planned_with_its_parameters()
    {
        var spec = new JobSpec
        {
            JobType = typeof(KeyedPipelineJob).FullName!,
            Parallelism = 3,
            MaxParallelism = 64,
            Parameters = JobParameters.Empty.With("count", 5),
        };

        var plan = JobDefinitions.Plan(spec);

        Assert.Equal(64, plan.MaxParallelism);
        Assert.Equal(["numbers", "#1:map", "process", "out"], plan.Nodes.Select(static n => n.EffectiveUid));
        Assert.All(plan.Chains, static c => Assert.Equal(3, c.Parallelism));
        Assert.Equal(6, plan.SubtaskCount);
    }

    [Fact]
    public void Validation_errors_of_a_job_found_by_name_reach_the_caller()
    {
        var error = Assert.Throws<JobValidationException>(() => JobDefinitions.Plan(new JobSpec { JobType = typeof(MissingUidJob).FullName! }));

        Assert.Contains("has no Uid", Assert.Single(error.Errors), StringComparison.Ordinal);
    }

    [Fact]
    public void An_exception_in_build_becomes_a_validation_error_with_the_cause()
    {
        var error = Assert.Throws<JobValidationException>(() => JobDefinitions.Plan(new JobSpec { JobType = typeof(ThrowingJob).FullName! }));

        Assert.Contains("boom in build", error.Message, StringComparison.Ordinal);
        Assert.IsType<InvalidOperationException>(error.InnerException);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(32769)]
    public void Invalid_max_parallelism_in_the_spec_is_rejected(int maxParallelism)
    {
        var spec = new JobSpec { JobType = typeof(KeyedPipelineJob).FullName!, MaxParallelism = maxParallelism };

        var error = Assert.Throws<JobValidationException>(() => JobDefinitions.Plan(spec));

        Assert.Contains(maxParallelism.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Source_map_filter_with_equal_parallelism_form_one_chain()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Uid("numbers").Map(static x => x + 1).Filter(static x => x % 2 == 0).Sink(Ops.Discard());

        var plan = JobPlan.Create(builder.Nodes, 4, 128);

        var chain = Assert.Single(plan.Chains);
        Assert.Equal(["source", "map", "filter", "sink"], chain.Nodes.Select(static n => n.Kind));
        Assert.Equal(4, chain.Parallelism);
        Assert.True(chain.IsSource);
        Assert.False(chain.IsKeyed);
        Assert.Empty(plan.Edges);
        Assert.All(plan.Nodes, n => Assert.Same(chain, plan.ChainOf(n)));
        Assert.Equal("numbers -> #1:map -> #2:filter -> #3:sink", chain.Name);
    }

    [Fact]
    public void KeyBy_breaks_the_chain_with_a_hash_edge()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Uid("numbers").Map(static x => x)
            .KeyBy(static x => x % 3).Process(new NoOpProcess()).Uid("process")
            .Sink(Ops.Discard()).Uid("out");

        var plan = JobPlan.Create(builder.Nodes, 2, 128);

        Assert.Equal(2, plan.Chains.Count);
        Assert.Equal(["source", "map"], plan.Chains[0].Nodes.Select(static n => n.Kind));
        Assert.Equal(["process", "sink"], plan.Chains[1].Nodes.Select(static n => n.Kind));
        var edge = Assert.Single(plan.Edges);
        Assert.Equal(Partitioning.Hash, edge.Partitioning);
        Assert.Same(plan.Chains[0], edge.Source);
        Assert.Same(plan.Chains[1], edge.Target);
        Assert.NotNull(edge.Edge.Key);
        Assert.Equal(typeof(long), edge.Edge.Key!.KeyType);
        Assert.True(plan.Chains[1].IsKeyed);
        Assert.False(plan.Chains[0].IsKeyed);
        Assert.Equal([edge], plan.Chains[0].Outputs);
        Assert.Equal([edge], plan.Chains[1].Inputs);
        Assert.Equal([0, 1], edge.SendersOf(1));
        Assert.Equal([0, 1], edge.ReceiversOf(0));
    }

    [Fact]
    public void Forward_edge_between_different_parallelisms_becomes_rebalance()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Uid("numbers").Parallelism(2).Map(static x => x).Parallelism(3).Sink(Ops.Discard());

        var plan = JobPlan.Create(builder.Nodes, 3, 128);

        Assert.Equal(2, plan.Chains.Count);
        Assert.Equal(2, plan.Chains[0].Parallelism);
        Assert.Equal(3, plan.Chains[1].Parallelism);
        Assert.Equal(["map", "sink"], plan.Chains[1].Nodes.Select(static n => n.Kind));
        var edge = Assert.Single(plan.Edges);
        Assert.Equal(Partitioning.Forward, edge.Edge.Partitioning);
        Assert.Equal(Partitioning.Rebalance, edge.Partitioning);
        Assert.Equal([0, 1], edge.SendersOf(2));
        Assert.Equal([0, 1, 2], edge.ReceiversOf(1));
    }

    [Fact]
    public void Explicit_rebalance_breaks_the_chain_even_with_equal_parallelism()
    {
        var builder = new StreamBuilder();
        builder.Source(Ops.Numbers()).Uid("numbers").Rebalance().Map(static x => x).Sink(Ops.Discard());

        var plan = JobPlan.Create(builder.Nodes, 2, 128);

        Assert.Equal(2, plan.Chains.Count);
        Assert.Equal(Partitioning.Rebalance, Assert.Single(plan.Edges).Partitioning);
    }

    [Fact]
    public void Union_of_two_sources_gives_the_next_operator_two_input_edges()
    {
        var builder = new StreamBuilder();
        var left = builder.Source(Ops.Numbers()).Uid("left");
        var right = builder.Source(Ops.Numbers()).Uid("right");
        left.Union(right).Map(static x => x).Uid("merge").Sink(Ops.Discard());

        var plan = JobPlan.Create(builder.Nodes, 2, 128);

        var merge = plan.Nodes.Single(static n => n.Uid == "merge");
        Assert.Equal(2, merge.Inputs.Count);
        Assert.Equal(["left", "right"], merge.Inputs.Select(static e => e.Source.Uid));
        var mergeChain = plan.ChainOf(merge);
        Assert.Same(merge, mergeChain.Head);
        Assert.Equal(2, mergeChain.Inputs.Count);
        Assert.Equal(3, plan.Chains.Count);
        Assert.Equal(
            [plan.ChainOf(plan.Nodes[0]), plan.ChainOf(plan.Nodes[1])],
            mergeChain.Inputs.Select(static e => e.Source));
        Assert.All(mergeChain.Inputs, static e => Assert.Equal(Partitioning.Forward, e.Partitioning));
    }

    [Fact]
    public void Union_keeps_each_input_streams_own_partitioning()
    {
        var builder = new StreamBuilder();
        var left = builder.Source(Ops.Numbers()).Uid("left");
        var right = builder.Source(Ops.Numbers()).Uid("right");
        var third = builder.Source(Ops.Numbers()).Uid("third");
        left.Union(right.Rebalance(), third).Map(static x => x).Uid("merge").Sink(Ops.Discard());

        var plan = JobPlan.Create(builder.Nodes, 2, 128);

        var merge = plan.Nodes.Single(static n => n.Uid == "merge");
        Assert.Equal(
            [("left", Partitioning.Forward), ("right", Partitioning.Rebalance), ("third", Partitioning.Forward)],
            merge.Inputs.Select(static e => (e.Source.Uid, e.Partitioning)));
    }

    [Fact]
    public void Settings_on_a_union_are_refused()
    {
        var builder = new StreamBuilder();
        var left = builder.Source(Ops.Numbers()).Uid("left");
        var right = builder.Source(Ops.Numbers()).Uid("right");

        Assert.Throws<InvalidOperationException>(() => left.Union(right).Uid("both"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("slash/in/it")]
    public void Invalid_uids_are_refused_when_set(string uid)
    {
        var builder = new StreamBuilder();

        Assert.Throws<ArgumentException>(() => builder.Source(Ops.Numbers()).Uid(uid));
    }

    [Fact]
    public void Planning_the_same_job_twice_gives_the_same_plan()
    {
        var spec = new JobSpec { JobType = typeof(FanOutJob).FullName!, Parallelism = 2, MaxParallelism = 32 };

        var first = JobDefinitions.Plan(spec);
        var second = JobDefinitions.Plan(spec);

        Assert.Equal(Describe(first), Describe(second));

        // The plan is not trivial, so the comparison above compares something.
        Assert.True(first.Chains.Count >= 4);
        Assert.True(first.Edges.Count >= 4);
    }

    private static List<string> Describe(JobPlan plan) =>
    [
        .. plan.Chains.Select(static c => $"chain {c.Index}: {c.Name} x{c.Parallelism} keyed={c.IsKeyed}"),
        .. plan.Edges.Select(static e => $"edge {e.Id}: {e.Source.Index} -[{e.Partitioning}]-> {e.Target.Index}"),
    ];
}

/// <summary>A job with fan-out, union, keyBy, explicit parallelism and rebalance, for determinism checks.</summary>
public sealed class FanOutJob : IStreamJob
{
    public void Build(StreamBuilder builder, JobParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var a = builder.Source(Ops.Numbers()).Uid("a");
        var b = builder.Source(Ops.Numbers()).Uid("b").Parallelism(1);
        var evens = a.Filter(static x => x % 2 == 0).Uid("evens");
        var odds = a.Filter(static x => x % 2 == 1).Uid("odds").Parallelism(3);
        evens.Union(odds, b)
            .KeyBy(static x => x % 5).Process(new NoOpProcess()).Uid("counts")
            .Rebalance().Map(static x => x).Uid("format")
            .Sink(Ops.Discard()).Uid("out").Parallelism(1);
    }
}
