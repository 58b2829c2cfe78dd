"""Display service: matches worker results to preview frames and renders them to sinks."""
