namespace StreamGrains.State;

/// <summary>The kind of a keyed state.</summary>
public enum StateKind : byte
{
    /// <summary>One value per key (<see cref="IValueState{T}"/>).</summary>
    Value = 0,

    /// <summary>A list per key (<see cref="IListState{T}"/>).</summary>
    List = 1,

    /// <summary>A map per key (<see cref="IMapState{TKey, TValue}"/>).</summary>
    Map = 2,

    /// <summary>One value per key, folded with a reduce function (<see cref="IReducingState{T}"/>).</summary>
    Reducing = 3,
}

/// <summary>Names and describes a keyed state of an operator.</summary>
/// <remarks>A state's name is stable across versions of the job: state is matched by operator Uid and state name on restore.</remarks>
public abstract class StateDescriptor
{
    private protected StateDescriptor(string name, StateKind kind)
    {
        ValidateName(name);
        Name = name;
        Kind = kind;
    }

    /// <summary>The state's name, unique within its operator.</summary>
    public string Name { get; }

    /// <summary>The state's kind.</summary>
    public StateKind Kind { get; }

    /// <summary>Throws when <paramref name="name"/> cannot name a state.</summary>
    public static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new ArgumentException("A state name must not be empty.", nameof(name));
        }

        if (name.StartsWith('_'))
        {
            throw new ArgumentException($"State name '{name}' is invalid: names starting with '_' are reserved for the runtime.", nameof(name));
        }

        if (name.Length > 200)
        {
            throw new ArgumentException($"State name '{name[..20]}...' is longer than 200 characters.", nameof(name));
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Kind} state '{Name}'";
}

/// <summary>Describes a <see cref="IValueState{T}"/>.</summary>
public sealed class ValueStateDescriptor<T> : StateDescriptor
{
    /// <summary>Creates the descriptor.</summary>
    /// <param name="name">The state's name.</param>
    /// <param name="serializer">An explicit serializer; Orleans' codec when null.</param>
    public ValueStateDescriptor(string name, IStateSerializer<T>? serializer = null)
        : base(name, StateKind.Value) => Serializer = serializer;

    /// <summary>The explicit serializer, if any.</summary>
    public IStateSerializer<T>? Serializer { get; }

    /// <summary>Returned by <see cref="IValueState{T}.Get"/> when the current key has no value.</summary>
    public T? DefaultValue { get; init; }
}

/// <summary>Describes a <see cref="IListState{T}"/>.</summary>
public sealed class ListStateDescriptor<T> : StateDescriptor
{
    /// <summary>Creates the descriptor.</summary>
    /// <param name="name">The state's name.</param>
    /// <param name="serializer">An explicit element serializer; Orleans' codec when null.</param>
    public ListStateDescriptor(string name, IStateSerializer<T>? serializer = null)
        : base(name, StateKind.List) => Serializer = serializer;

    /// <summary>The explicit element serializer, if any.</summary>
    public IStateSerializer<T>? Serializer { get; }
}

/// <summary>Describes a <see cref="IMapState{TKey, TValue}"/>.</summary>
public sealed class MapStateDescriptor<TKey, TValue> : StateDescriptor
    where TKey : notnull
{
    /// <summary>Creates the descriptor.</summary>
    /// <param name="name">The state's name.</param>
    /// <param name="keySerializer">An explicit, deterministic user-key serializer; built-in or Orleans' codec when null.</param>
    /// <param name="valueSerializer">An explicit value serializer; Orleans' codec when null.</param>
    public MapStateDescriptor(string name, IKeySerializer<TKey>? keySerializer = null, IStateSerializer<TValue>? valueSerializer = null)
        : base(name, StateKind.Map)
    {
        KeySerializer = keySerializer;
        ValueSerializer = valueSerializer;
    }

    /// <summary>The explicit user-key serializer, if any.</summary>
    public IKeySerializer<TKey>? KeySerializer { get; }

    /// <summary>The explicit value serializer, if any.</summary>
    public IStateSerializer<TValue>? ValueSerializer { get; }
}

/// <summary>Describes a <see cref="IReducingState{T}"/>.</summary>
public sealed class ReducingStateDescriptor<T> : StateDescriptor
{
    /// <summary>Creates the descriptor.</summary>
    /// <param name="name">The state's name.</param>
    /// <param name="reduce">Combines the current value with an added one; must be deterministic.</param>
    /// <param name="serializer">An explicit serializer; Orleans' codec when null.</param>
    public ReducingStateDescriptor(string name, Func<T, T, T> reduce, IStateSerializer<T>? serializer = null)
        : base(name, StateKind.Reducing)
    {
        ArgumentNullException.ThrowIfNull(reduce);
        Reduce = reduce;
        Serializer = serializer;
    }

    /// <summary>The reduce function.</summary>
    public Func<T, T, T> Reduce { get; }

    /// <summary>The explicit serializer, if any.</summary>
    public IStateSerializer<T>? Serializer { get; }
}
