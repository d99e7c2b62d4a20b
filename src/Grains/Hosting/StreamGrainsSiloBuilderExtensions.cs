using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using StreamGrains.Grains.Channels;
using StreamGrains.Grains.Placement;
using StreamGrains.State.RocksDb;
using StreamGrains.State.Snapshots;

namespace StreamGrains.Grains;

/// <summary>Adds the StreamGrains runtime to a silo.</summary>
public static class StreamGrainsSiloBuilderExtensions
{
    /// <summary>
    /// Registers the job, subtask and collector grains, subtask placement, the batch transport, the RocksDB resources
    /// shared by the silo's subtasks, the <see cref="CrashedSiloDetector"/> (with its call filter) that gets crashed
    /// silos declared dead at once, the <see cref="ThreadPoolFloor"/>, and the <see cref="SiloDeparture"/> that moves jobs
    /// away when the silo stops.
    /// Options come from <paramref name="configure"/> and any other configuration of <see cref="StreamGrainsOptions"/>;
    /// they are validated when the silo starts. Membership and health monitoring get a <see cref="SiloStartClock"/>
    /// (see there why).
    /// </summary>
    public static ISiloBuilder AddStreamGrains(this ISiloBuilder builder, Action<StreamGrainsOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<StreamGrainsOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        builder.Services.TryAddSingleton<IValidateOptions<StreamGrainsOptions>, StreamGrainsOptionsValidator>();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddKeyedSingleton<TimeProvider>(Orleans.Runtime.TimeProviderNames.Membership, static (_, _) => new SiloStartClock());
        builder.Services.TryAddSingleton<IBatchTransport, GrainBatchTransport>();
        builder.Services.TryAddSingleton(static sp =>
        {
            var o = sp.GetRequiredService<IOptions<StreamGrainsOptions>>().Value;
            return new RocksDbResources(new RocksDbResourceOptions
            {
                BlockCacheBytes = (long)o.BlockCacheMb << 20,
                WriteBufferBytes = (long)o.WriteBufferMb << 20,
                ColumnFamilyWriteBufferBytes = (long)o.ColumnFamilyWriteBufferMb << 20,
            });
        });
        builder.Services.TryAddSingleton(static sp => sp.GetRequiredService<IOptions<StreamGrainsOptions>>().Value.CheckpointStorage.Create());
        builder.Services.TryAddSingleton<SharedRestoreDownloads>();
        builder.Services.AddPlacementDirector<SubtaskPlacementStrategy, SubtaskPlacementDirector>();
        builder.Services.TryAddSingleton<CrashedSiloDetector>();
        builder.Services.AddSingleton<IOutgoingGrainCallFilter, CrashedSiloCallFilter>();
        builder.Services.TryAddSingleton<ThreadPoolFloor>();
        builder.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(static sp => sp.GetRequiredService<ThreadPoolFloor>());
        builder.Services.TryAddSingleton<SiloDeparture>();
        builder.Services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(static sp => sp.GetRequiredService<SiloDeparture>());
        return builder;
    }

    private sealed class StreamGrainsOptionsValidator : IValidateOptions<StreamGrainsOptions>
    {
        public ValidateOptionsResult Validate(string? name, StreamGrainsOptions options)
        {
            var errors = options.Validate().ToList();
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }
    }
}
