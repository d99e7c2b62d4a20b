using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using StreamGrains.State.RocksDb;

namespace StreamGrains.Grains.Tests;

public sealed class StreamGrainsOptionsTests
{
    [Fact]
    public void The_defaults_are_valid()
    {
        Assert.Empty(new StreamGrainsOptions().Validate());
    }

    [Theory]
    [InlineData(0, 128)]
    [InlineData(-1, 128)]
    [InlineData(65, 64)]
    public void A_column_family_memtable_outside_one_MiB_to_the_shared_budget_is_refused_with_the_range(int columnFamilyMb, int budgetMb)
    {
        var options = new StreamGrainsOptions { ColumnFamilyWriteBufferMb = columnFamilyMb, WriteBufferMb = budgetMb };

        var error = Assert.Single(options.Validate());

        Assert.Contains("ColumnFamilyWriteBufferMb", error, StringComparison.Ordinal);
        Assert.Contains($"between 1 and WriteBufferMb ({budgetMb})", error, StringComparison.Ordinal);
        Assert.Contains($"was {columnFamilyMb}", error, StringComparison.Ordinal);
    }

    [Fact]
    public void The_memtable_sizes_of_the_settings_are_the_ones_RocksDB_is_opened_with()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.UseOrleans(silo => silo.UseLocalhostClustering().AddStreamGrains(o =>
        {
            o.WriteBufferMb = 48;
            o.ColumnFamilyWriteBufferMb = 24;
        }));
        using var host = builder.Build();

        var resources = host.Services.GetRequiredService<RocksDbResources>();

        Assert.Equal(48L << 20, resources.Options.WriteBufferBytes);
        Assert.Equal(24L << 20, resources.Options.ColumnFamilyWriteBufferBytes);
    }
}
