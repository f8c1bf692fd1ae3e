//! Talks to an agent on a unix socket the way a host does: resynchronise, then ask for the
//! agent's identity and the guest's. Usage: `demo <socket>`.

use qga_client::{Client, ClientError};
use qga_schema::{
    GuestGetHostName, GuestGetOsinfo, GuestGetTime, GuestGetTimezone, GuestGetUsers, GuestInfo,
    GuestPing, NoArgs,
};

fn main() -> Result<(), ClientError> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/qga.sock".to_string());
    let mut c = Client::connect_unix(&path)?;
    c.sync()?;
    c.execute::<GuestPing>(&NoArgs {})?;
    let info = c.execute::<GuestInfo>(&NoArgs {})?;
    println!("agent version      {}", info.version);
    let names: Vec<&str> = info
        .supported_commands
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    println!("commands           {}", names.join(" "));
    let os = c.execute::<GuestGetOsinfo>(&NoArgs {})?;
    println!(
        "os                 {}",
        os.pretty_name.as_deref().unwrap_or("?")
    );
    println!(
        "kernel             {} {}",
        os.kernel_release.as_deref().unwrap_or("?"),
        os.machine.as_deref().unwrap_or("?")
    );
    println!(
        "host name          {}",
        c.execute::<GuestGetHostName>(&NoArgs {})?.host_name
    );
    let tz = c.execute::<GuestGetTimezone>(&NoArgs {})?;
    println!(
        "time zone          {} ({:+} s)",
        tz.zone.as_deref().unwrap_or("?"),
        tz.offset
    );
    println!(
        "guest time (ns)    {}",
        c.execute::<GuestGetTime>(&NoArgs {})?
    );
    let users = c.execute::<GuestGetUsers>(&NoArgs {})?;
    println!("logged-in users    {}", users.len());
    Ok(())
}
