namespace StreamGrains.Abstractions.Tests;

public sealed class CheckpointSettingsTests
{
    [Fact]
    public void Defaults_are_valid_and_changelog_mode_has_sensible_defaults()
    {
        var settings = new CheckpointSettings { Interval = TimeSpan.FromSeconds(10), Mode = CheckpointMode.Changelog };

        Assert.Empty(settings.Validate());
        Assert.Equal(CheckpointMode.Incremental, new CheckpointSettings().Mode);
        Assert.Equal(TimeSpan.FromMinutes(3), settings.MaterializationInterval);
        Assert.Equal(512 << 10, settings.ChangelogSegmentBytes);
        Assert.Equal(TimeSpan.FromSeconds(1), settings.ChangelogSegmentInterval);
    }

    [Fact]
    public void Bad_changelog_settings_are_each_named_with_the_value_given()
    {
        var settings = new CheckpointSettings
        {
            Interval = TimeSpan.FromSeconds(10),
            Mode = (CheckpointMode)7,
            MaterializationInterval = TimeSpan.FromMilliseconds(5),
            ChangelogSegmentBytes = 100,
            ChangelogSegmentInterval = TimeSpan.Zero,
        };

        var errors = settings.Validate().ToList();

        Assert.Equal(4, errors.Count);
        Assert.Contains(errors, static e => e.Contains("Checkpointing.Mode", StringComparison.Ordinal) && e.Contains('7', StringComparison.Ordinal));
        Assert.Contains(errors, static e => e.Contains("Checkpointing.MaterializationInterval", StringComparison.Ordinal) && e.Contains("00:00:00.005", StringComparison.Ordinal));
        Assert.Contains(errors, static e => e.Contains("Checkpointing.ChangelogSegmentBytes", StringComparison.Ordinal) && e.Contains("100", StringComparison.Ordinal));
        Assert.Contains(errors, static e => e.Contains("Checkpointing.ChangelogSegmentInterval", StringComparison.Ordinal));
    }

    [Fact]
    public void Eager_uploads_default_to_one_second_and_a_bad_interval_is_named_with_the_value_given()
    {
        Assert.Equal(TimeSpan.FromSeconds(1), new CheckpointSettings().EagerUploadInterval);
        Assert.Empty(new CheckpointSettings { Interval = TimeSpan.FromSeconds(10), EagerUploadInterval = null }.Validate());

        var errors = new CheckpointSettings { Interval = TimeSpan.FromSeconds(10), EagerUploadInterval = TimeSpan.FromMilliseconds(1) }.Validate().ToList();

        var error = Assert.Single(errors);
        Assert.Contains("Checkpointing.EagerUploadInterval", error, StringComparison.Ordinal);
        Assert.Contains("00:00:00.001", error, StringComparison.Ordinal);
    }
}
